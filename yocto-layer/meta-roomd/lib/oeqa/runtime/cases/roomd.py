#
# SPDX-License-Identifier: MIT
#
# roomd on a booted image: what the layer installs, then the daemon against roomd-sim on the
# device's loopback (the image has no cloud of its own). Run with TEST_SUITES = "... ssh roomd".

import json
import time

from oeqa.core.decorator.depends import OETestDepends
from oeqa.runtime.case import OERuntimeTestCase
from oeqa.runtime.decorator.package import OEHasPackage

SIM_STATE = '/run/roomd-sim'
DROP_IN = '/etc/roomd/config.d/90-testimage.toml'


class RoomdTest(OERuntimeTestCase):

    def run_ok(self, cmd, timeout=None):
        status, output = self.target.run(cmd, timeout=timeout)
        self.assertEqual(status, 0, msg='`%s` exited %s:\n%s' % (cmd, status, output))
        return output

    def wait_for(self, cmd, seconds, what):
        deadline = time.time() + seconds
        while True:
            status, output = self.target.run(cmd)
            if status == 0:
                return output
            if time.time() > deadline:
                self.fail('%s within %d s; last `%s`:\n%s' % (what, seconds, cmd, output))
            time.sleep(1)

    @OETestDepends(['ssh.SSHTest.test_ssh'])
    @OEHasPackage(['roomd'])
    def test_roomd_installed(self):
        self.run_ok('test -x /usr/bin/roomd')
        self.run_ok('systemctl is-enabled roomd.service')
        board = self.run_ok(
            "sed -n 's/^board *= *\"\\(.*\\)\"/\\1/p' /etc/roomd/roomd.toml").strip()
        self.assertTrue(board, msg='/etc/roomd/roomd.toml names no board')
        self.run_ok('test -f /usr/share/roomd/board/%s.toml' % board)
        groups = self.run_ok('id -nG roomd').split()
        for group in ('roomd', 'gpio', 'video', 'audio'):
            self.assertIn(group, groups, msg='roomd is not in group %s: %s' % (group, groups))
        self.run_ok('test -f /usr/lib/sysusers.d/roomd.conf')
        self.run_ok('test -f /usr/lib/tmpfiles.d/roomd.conf')

    @OETestDepends(['roomd.RoomdTest.test_roomd_installed'])
    @OEHasPackage(['roomd-sim'])
    def test_roomd_runs_against_sim(self):
        self.run_ok('systemctl stop roomd-sim-testimage.service || true; rm -rf %s' % SIM_STATE)
        self.run_ok('systemd-run --unit=roomd-sim-testimage roomd-sim --state-dir %s' % SIM_STATE)
        self.addCleanup(self.target.run,
                        'rm -f %s; systemctl stop roomd-sim-testimage; systemctl restart roomd'
                        % DROP_IN)
        # The sim writes sim.json once every listener is bound.
        info = json.loads(self.wait_for('cat %s/sim.json' % SIM_STATE, 60, 'roomd-sim did not start'))
        self.run_ok("printf '%%s\\n' '[cloud]' 'gds_url = \"%s\"' 'activation_url = \"%s\"' "
                    "'extra_ca_files = [\"%s\"]' > %s"
                    % (info['gds_url'], info['activation_url'], info['ca'], DROP_IN))

        # Type=notify: restart returns once roomd sent READY=1, or failed.
        self.run_ok('systemctl restart roomd', timeout=90)
        self.assertEqual(self.run_ok('systemctl is-active roomd').strip(), 'active')
        output = self.run_ok('roomd check', timeout=60)
        self.assertNotIn('FAIL', output)
        self.run_ok('roomd status', timeout=30)
