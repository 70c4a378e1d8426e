//! One booted aarch64 guest: `qemu-system-aarch64 -M virt` under TCG with no network
//! device, the image from `scripts/system/image.sh`, a read-only 9p share with the build
//! under test, the harness agent on a virtio-serial port, a virtio-gpu display (no window:
//! QMP `screendump` shows it) and QMP on a unix socket.
//!
//! QEMU connects to sockets the harness listens on before it starts, so nothing polls for a
//! socket to appear. Every exchange is bounded by a timeout; a failure prints the tail of
//! the serial console.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// What the image directory holds (see scripts/system/image.sh).
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Vec<(String, String)>,
}

impl Image {
    pub fn open(dir: &Path) -> Image {
        let manifest = std::fs::read_to_string(dir.join("manifest.txt"))
            .unwrap_or_else(|e| panic!("{}/manifest.txt: {e}", dir.display()))
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Image {
            dir: dir.to_owned(),
            manifest,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.manifest
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A command's result inside the guest.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub text: String,
}

pub struct Guest {
    qemu: Child,
    agent_rx: Lines<BufReader<OwnedReadHalf>>,
    agent_tx: OwnedWriteHalf,
    qmp_rx: Lines<BufReader<OwnedReadHalf>>,
    qmp_tx: OwnedWriteHalf,
    console: PathBuf,
    next_id: u64,
    /// The boot id of the agent that answered last `hello`.
    pub boot_id: String,
}

async fn accept(listener: &UnixListener, what: &str, qemu: &mut Child) -> UnixStream {
    tokio::select! {
        accepted = timeout(Duration::from_secs(30), listener.accept()) => match accepted {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => panic!("accepting QEMU's {what} connection: {e}"),
            Err(_) => panic!("QEMU did not connect its {what} socket within 30 s"),
        },
        status = qemu.wait() => panic!("QEMU exited before connecting {what}: {status:?}"),
    }
}

impl Guest {
    /// Starts QEMU and returns once QMP is up (the guest is still booting). `display` is the
    /// virtio-gpu output's size: without an EDID (whose modes go up to 5120×2160, the one
    /// fbcon would set) the guest driver makes it the connector's preferred mode.
    pub async fn spawn(image: &Image, share: &Path, work: &Path, display: (u32, u32)) -> Guest {
        let agent_path = work.join("agent.sock");
        let qmp_path = work.join("qmp.sock");
        let console = work.join("console.log");
        let agent_listener = UnixListener::bind(&agent_path).expect("agent socket");
        let qmp_listener = UnixListener::bind(&qmp_path).expect("QMP socket");
        let cmdline = std::fs::read_to_string(image.dir.join("cmdline"))
            .expect("image cmdline")
            .trim()
            .to_owned();
        let cpu = std::env::var("ROOMD_SYSTEM_CPU")
            .unwrap_or_else(|_| image.get("qemu_cpu").unwrap_or("cortex-a72").to_owned());
        let mut command = Command::new("qemu-system-aarch64");
        command
            .args([
                "-M", "virt", "-accel", "tcg", "-cpu", &cpu, "-smp", "2", "-m", "1024",
            ])
            .args(["-nic", "none", "-display", "none", "-monitor", "none"])
            .arg("-kernel")
            .arg(image.dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.dir.join("initrd.img"))
            .args(["-append", &cmdline])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,snapshot=on",
                image.dir.join("rootfs.ext4").display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=roomd,security_model=none,readonly=on",
                share.display()
            ))
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=harness,path={}", agent_path.display()))
            .args([
                "-device",
                "virtserialport,chardev=harness,name=org.roomd.harness",
            ])
            .arg("-device")
            .arg(format!(
                "virtio-gpu-pci,edid=off,xres={},yres={}",
                display.0, display.1
            ))
            .arg("-chardev")
            .arg(format!("socket,id=qmp,path={}", qmp_path.display()))
            .args(["-mon", "chardev=qmp,mode=control"])
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut qemu = command
            .spawn()
            .expect("qemu-system-aarch64 starts (scripts/deps.sh qemu-system installs it)");
        let agent = accept(&agent_listener, "harness", &mut qemu).await;
        let qmp = accept(&qmp_listener, "QMP", &mut qemu).await;
        let (agent_rx, agent_tx) = agent.into_split();
        let (qmp_rx, qmp_tx) = qmp.into_split();
        let mut guest = Guest {
            qemu,
            agent_rx: BufReader::new(agent_rx).lines(),
            agent_tx,
            qmp_rx: BufReader::new(qmp_rx).lines(),
            qmp_tx,
            console,
            next_id: 0,
            boot_id: String::new(),
        };
        let greeting = guest.qmp_line(Duration::from_secs(30)).await;
        assert!(greeting.get("QMP").is_some(), "QMP greeting: {greeting}");
        guest.qmp(json!({"execute": "qmp_capabilities"})).await;
        guest
    }

    /// The serial console's last lines, for failure messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- serial console (last 30 lines) ---\n{}",
            self.console_tail(30)
        )
    }

    async fn qmp_line(&mut self, within: Duration) -> Value {
        match timeout(within, self.qmp_rx.next_line()).await {
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .unwrap_or_else(|e| self.fail(&format!("QMP sent {line:?}: {e}"))),
            Ok(Ok(None)) => self.fail("QMP closed"),
            Ok(Err(e)) => self.fail(&format!("QMP read: {e}")),
            Err(_) => self.fail(&format!("no QMP message within {within:?}")),
        }
    }

    /// One QMP command; its `return` value (asynchronous events in between are skipped).
    pub async fn qmp(&mut self, command: Value) -> Value {
        let mut line = command.to_string();
        line.push('\n');
        if let Err(e) = self.qmp_tx.write_all(line.as_bytes()).await {
            self.fail(&format!("QMP write: {e}"));
        }
        loop {
            let reply = self.qmp_line(Duration::from_secs(30)).await;
            if let Some(value) = reply.get("return") {
                return value.clone();
            }
            if let Some(error) = reply.get("error") {
                self.fail(&format!("QMP {command}: {error}"));
            }
        }
    }

    /// The display as QEMU scans it out now (QMP `screendump`, PPM), kept at `path`.
    pub async fn screendump(&mut self, path: &Path) -> Picture {
        self.qmp(json!({
            "execute": "screendump",
            "arguments": {"filename": path.to_str().expect("a UTF-8 path")},
        }))
        .await;
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| self.fail(&format!("screendump {}: {e}", path.display())));
        Picture::from_ppm(&bytes)
            .unwrap_or_else(|| self.fail(&format!("screendump {}: not a P6 PPM", path.display())))
    }

    async fn agent_line(&mut self, within: Duration, waiting_for: &str) -> String {
        match timeout(within, self.agent_rx.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => self.fail("the harness port closed (QEMU exited?)"),
            Ok(Err(e)) => self.fail(&format!("harness port read: {e}")),
            Err(_) => self.fail(&format!("{waiting_for}: nothing within {within:?}")),
        }
    }

    /// Waits for the agent's `hello` from a boot other than the current one.
    pub async fn wait_for_boot(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let left = within.saturating_sub(started.elapsed());
            let line = self.agent_line(left, "the guest boots to its agent").await;
            if let Some(boot_id) = line.strip_prefix("hello ") {
                if boot_id != self.boot_id {
                    self.boot_id = boot_id.to_owned();
                    return started.elapsed();
                }
            }
        }
    }

    /// Runs a bash script in the guest (lib.sh's helpers available) within `within`.
    pub async fn run(&mut self, script: &str, within: Duration) -> Output {
        let id = self.send(script, within).await;
        // The guest's `timeout` fires first; the slack covers transfer under TCG.
        let deadline = within + Duration::from_secs(30);
        let started = Instant::now();
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            let line = self
                .agent_line(left, &format!("guest command {script:?}"))
                .await;
            let mut parts = line.splitn(3, ' ');
            let (Some(got), Some(status), payload) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if got != id.to_string() {
                // A `hello` after an unexpected reboot, or a late answer to a timed-out call.
                if got == "hello" {
                    self.fail(&format!("the guest rebooted while running {script:?}"));
                }
                continue;
            }
            let bytes = BASE64.decode(payload.unwrap_or("")).unwrap_or_default();
            return Output {
                status: status.parse().unwrap_or(-1),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            };
        }
    }

    /// Runs a script that must succeed; its output.
    pub async fn ok(&mut self, script: &str, within: Duration) -> String {
        let out = self.run(script, within).await;
        if out.status != 0 {
            self.fail_with_journal(&format!(
                "guest command failed (exit {}{}):\n{script}\n--- output ---\n{}",
                out.status,
                if out.status == 124 { ", timed out" } else { "" },
                out.text,
            ))
            .await;
        }
        out.text
    }

    /// Fails the test with `what`, the last entries of roomd's and roomd-sim's journal and
    /// the serial console.
    pub async fn fail_with_journal(&mut self, what: &str) -> ! {
        let journal = self
            .run(
                "journalctl --no-pager -n 60 -o short-monotonic -u roomd.service -u roomd-sim.service",
                Duration::from_secs(60),
            )
            .await;
        self.fail(&format!(
            "{what}\n--- journal of roomd and roomd-sim (last 60 entries) ---\n{}",
            journal.text
        ))
    }

    /// Sends a script that does not answer (a reboot) and does not wait.
    pub async fn send_only(&mut self, script: &str) {
        self.send(script, Duration::from_secs(60)).await;
    }

    /// Writes one request to the agent; its id.
    async fn send(&mut self, script: &str, within: Duration) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let seconds = within.as_secs().max(1);
        let request = format!("{id} {seconds} {}\n", BASE64.encode(script));
        if let Err(e) = self.agent_tx.write_all(request.as_bytes()).await {
            self.fail(&format!("harness port write: {e}"));
        }
        id
    }

    /// Ends QEMU through QMP `quit` (it may close the socket before answering) and waits
    /// for it to exit.
    pub async fn quit(mut self) {
        let _ = self.qmp_tx.write_all(b"{\"execute\": \"quit\"}\n").await;
        if timeout(Duration::from_secs(30), self.qemu.wait())
            .await
            .is_err()
        {
            let _ = self.qemu.kill().await;
        }
    }
}

/// An RGB picture (a QMP `screendump`).
#[derive(Debug)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    rgb: Vec<u8>,
}

impl Picture {
    /// A binary PPM (`P6`, maxval 255), as QEMU writes it.
    pub fn from_ppm(bytes: &[u8]) -> Option<Picture> {
        // Header: magic, width, height, maxval, each followed by whitespace.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while bytes.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !bytes.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            fields.push(std::str::from_utf8(&bytes[start..at]).ok()?.to_owned());
        }
        at += 1;
        let (width, height): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
        if fields[0] != "P6" || fields[3] != "255" || bytes.len() < at + width * height * 3 {
            return None;
        }
        Some(Picture {
            width,
            height,
            rgb: bytes[at..at + width * height * 3].to_vec(),
        })
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The mean colour of the `(2r+1)²` pixels around `(x, y)` (one pixel can be an edge).
    pub fn around(&self, x: usize, y: usize, r: usize) -> [u8; 3] {
        let (mut sum, mut n) = ([0u32; 3], 0u32);
        for yy in y.saturating_sub(r)..=(y + r).min(self.height - 1) {
            for xx in x.saturating_sub(r)..=(x + r).min(self.width - 1) {
                let p = self.pixel(xx, yy);
                (0..3).for_each(|c| sum[c] += u32::from(p[c]));
                n += 1;
            }
        }
        sum.map(|v| (v / n.max(1)) as u8)
    }
}
