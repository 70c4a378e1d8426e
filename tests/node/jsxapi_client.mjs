// roomd's local xAPI through the real jsxapi client (docs/xapi.md). Driven by the Rust test
// harness, which starts roomd and roomd-sim and reads stdout.
//
// Environment:
//   ROOMD_XAPI_URL       ws://127.0.0.1:PORT (jsxapi always adds the /ws path)
//   ROOMD_XAPI_USER      a user with a password (admin or touchpanel)
//   ROOMD_XAPI_PASSWORD  its password
//   ROOMD_SIM_ADMIN      http://127.0.0.1:PORT of roomd-sim's admin API
//
// Output: one JSON line per step on stdout, {"step":"<name>","ok":true,...}; the first failure
// prints {"step":"<name>","ok":false,"error":"..."} and exits 1. The whole run is bounded by 90 s:
// then {"step":"<name>","ok":false,"error":"timed out ..."} names the step that hung, exit 2.
// Exit 0 when every step passed.
import jsxapi from 'jsxapi';
import { describe, env, fail, postBooking, runSteps, sleep, until, withTimeout } from './lib.mjs';

const url = env('ROOMD_XAPI_URL');
const username = env('ROOMD_XAPI_USER');
const password = env('ROOMD_XAPI_PASSWORD');
const simAdmin = env('ROOMD_SIM_ADMIN');

const STEP_WAIT_MS = 20000;
const OBTP_WINDOW_SECS = 300;

/** Connects; resolves with {xapi, ready, errors, closed} after 'ready' or 'error'. */
function open(user, pass_) {
  const xapi = jsxapi.connect(url, { username: user, password: pass_, loglevel: 'error' });
  const seen = { xapi, ready: false, errors: [], closed: false };
  // Listeners first: an 'error' without a listener would throw.
  const settled = new Promise((resolve) => {
    xapi.on('error', (e) => {
      seen.errors.push(describe(e));
      resolve(seen);
    });
    xapi.on('ready', () => {
      seen.ready = true;
      resolve(seen);
    });
    xapi.on('close', () => {
      seen.closed = true;
    });
  });
  return { seen, settled };
}

let xapi;
let session; // what the 'connect' connection has seen
let joinId;
let dialledCallId;
let joinNumber;

await runSteps(90000, [
  [
    'bad_credentials',
    async () => {
      const { seen, settled } = open(username, password + '-wrong');
      await withTimeout(settled, STEP_WAIT_MS, "neither 'error' nor 'ready'");
      // 'ready' must not come late either.
      await sleep(300);
      try {
        seen.xapi.close();
      } catch (_) {
        // never opened
      }
      if (seen.ready) fail("'ready' fired with a wrong password");
      if (seen.errors.length === 0) fail("no 'error' event");
      return { error: seen.errors[0] };
    },
  ],
  [
    'connect',
    async () => {
      const { seen, settled } = open(username, password);
      await withTimeout(settled, STEP_WAIT_MS, "neither 'ready' nor 'error'");
      if (!seen.ready) fail(`'error' instead of 'ready': ${seen.errors.join('; ')}`);
      xapi = seen.xapi;
      session = seen;
      return { user: username };
    },
  ],
  [
    'status_get',
    async () => {
      const version = await xapi.Status.SystemUnit.Software.Version.get();
      if (typeof version !== 'string' || version === '') fail(`Software Version is ${JSON.stringify(version)}`);
      const volume = await xapi.Status.Audio.Volume.get();
      if (typeof volume !== 'number' || !(volume >= 0 && volume <= 100)) fail(`Audio Volume is ${JSON.stringify(volume)}`);
      return { version, volume };
    },
  ],
  [
    'bookings_list',
    async () => {
      const result = await xapi.Command.Bookings.List();
      const list = result && result.Booking;
      if (!Array.isArray(list)) fail(`Booking is not an array: ${JSON.stringify(result).slice(0, 300)}`);
      if (list.length < 1) fail('no bookings listed');
      for (const b of list) {
        if (typeof b.Id !== 'string' || !b.Id.startsWith('webex-')) fail(`booking Id ${JSON.stringify(b.Id)}`);
        if (!b.Time || typeof b.Time.StartTime !== 'string' || !b.Time.StartTime) fail(`booking ${b.Id} has no Time.StartTime`);
      }
      return { totalRows: result.ResultInfo && result.ResultInfo.TotalRows, ids: list.map((b) => b.Id), titles: list.map((b) => b.Title) };
    },
  ],
  [
    'volume_feedback',
    async () => {
      const values = [];
      let wake = () => {};
      const off = xapi.Status.Audio.Volume.on((v) => {
        values.push(v);
        wake();
      });
      await off.registration;
      try {
        const before = await xapi.Status.Audio.Volume.get();
        const level = before === 37 ? 63 : 37;
        const seenLevel = new Promise((resolve) => {
          wake = () => values.includes(level) && resolve();
          wake();
        });
        // The reply and the feedback may come in either order: wait for both.
        const [reply] = await Promise.all([
          xapi.Command.Audio.Volume.Set({ Level: level }),
          withTimeout(seenLevel, STEP_WAIT_MS, `no Audio Volume feedback with ${level} (got ${JSON.stringify(values)})`),
        ]);
        const after = await xapi.Status.Audio.Volume.get();
        if (after !== level) fail(`Audio Volume reads ${JSON.stringify(after)} after Set ${level}`);
        return { before, level, feedback: values, reply };
      } finally {
        off();
      }
    },
  ],
  [
    'start_time_buffer_event',
    async () => {
      const events = [];
      let wake = () => {};
      const off = xapi.Event.Bookings.StartTimeBuffer.on((ev) => {
        events.push(ev);
        wake();
      });
      await off.registration;
      try {
        const title = `jsxapi OBTP ${process.pid}-${Date.now()}`;
        const start = new Date(Date.now() + (OBTP_WINDOW_SECS + 3) * 1000);
        const created = await postBooking(simAdmin, {
          title,
          start: start.toISOString(),
          duration_mins: 30,
          webex_uri: `jsxapi-${Date.now()}@webex.sim.invalid`,
        });
        const meetingId = created && ((created.booking && created.booking.id) || created.id);
        // Another booking's window may open meanwhile: an event is ours when Bookings List shows
        // our title under the event's Id.
        const ignored = [];
        let handled = 0;
        const ours = await withTimeout(
          until(async () => {
            while (handled < events.length) {
              const ev = events[handled++];
              const list = (await xapi.Command.Bookings.List()).Booking || [];
              const mine = list.find((b) => b.Title === title);
              if (mine && mine.Id === ev.Id) return { ev, booking: mine };
              if (mine && meetingId && ev.MeetingId === meetingId) fail(`event Id ${ev.Id} but Bookings List has ${mine.Id} for ${title}`);
              ignored.push(ev.Id);
            }
            await new Promise((r) => (wake = r));
            return undefined;
          }),
          STEP_WAIT_MS + 10000,
          `no StartTimeBuffer event for "${title}" (events: ${JSON.stringify(events)})`,
        );
        const { ev, booking } = ours;
        if (typeof ev.Id !== 'string' || !/^webex-\d+$/.test(ev.Id)) fail(`event Id ${JSON.stringify(ev.Id)}`);
        if (meetingId && ev.MeetingId !== undefined && ev.MeetingId !== meetingId) fail(`event MeetingId ${ev.MeetingId}, the sim created ${meetingId}`);
        joinId = booking.Id;
        const calls = booking.DialInfo && booking.DialInfo.Calls && booking.DialInfo.Calls.Call;
        const first = Array.isArray(calls) ? calls[0] : calls;
        joinNumber = first && first.Number;
        return { id: ev.Id, meetingId: ev.MeetingId, title, number: joinNumber, ignored };
      } finally {
        off();
      }
    },
  ],
  [
    'dial_booking',
    async () => {
      const params = { BookingId: joinId };
      if (joinNumber) params.Number = joinNumber;
      let offIndication = () => {};
      const indicated = new Promise((resolve) => {
        offIndication = xapi.Event.OutgoingCallIndication.on((ev) => {
          offIndication();
          resolve(ev);
        });
      });
      // The Subscribe must be in place before the Dial, or the event can pass before it.
      await offIndication.registration;
      try {
        const result = await xapi.Command.Dial(params);
        const ev = await withTimeout(indicated, STEP_WAIT_MS, 'no OutgoingCallIndication event');
        if (String(ev.CallId) !== String(result.CallId)) fail(`OutgoingCallIndication ${JSON.stringify(ev)} for another call than ${result.CallId}`);
        dialledCallId = result.CallId;
        if (!result || result.CallId === undefined) fail(`Dial result without CallId: ${JSON.stringify(result)}`);
        return { bookingId: joinId, number: joinNumber, outcome: 'result', callId: result.CallId, conferenceId: result.ConferenceId };
      } catch (e) {
        if (e && e.code === 1) return { bookingId: joinId, number: joinNumber, outcome: 'error', code: e.code, message: e.message };
        if (e && e.stepFailed) throw e;
        fail(`Dial failed with ${describe(e)}`);
      }
      return undefined;
    },
  ],
  [
    'call_disconnect',
    async () => {
      const isConnected = (value) =>
        [].concat(value || []).find((c) => String(c.id) === String(dialledCallId) && c.Status === 'Connected');
      let off = () => {};
      const fed = new Promise((resolve) => {
        off = xapi.Status.Call.on((value) => {
          const call = isConnected(value);
          if (call) resolve(call);
        });
      });
      await off.registration;
      let call;
      try {
        call = isConnected(await xapi.Status.Call.get()) ||
          (await withTimeout(fed, STEP_WAIT_MS, `Call ${dialledCallId} never showed Status Connected`));
      } finally {
        off();
      }
      let offDisconnect = () => {};
      const disconnected = new Promise((resolve) => {
        offDisconnect = xapi.Event.CallDisconnect.on((ev) => {
          offDisconnect();
          resolve(ev);
        });
      });
      await offDisconnect.registration;
      await xapi.Command.Call.Disconnect({ CallId: dialledCallId });
      const ev = await withTimeout(disconnected, STEP_WAIT_MS, 'no CallDisconnect event');
      if (ev.CauseType !== 'LocalDisconnect') fail(`CallDisconnect ${JSON.stringify(ev)}`);
      return { callId: dialledCallId, status: call.Status, remoteNumber: call.RemoteNumber, causeType: ev.CauseType };
    },
  ],
  [
    'close',
    async () => {
      const seen = session;
      const errorsBefore = seen.errors.length;
      const closed = new Promise((resolve) => {
        xapi.on('close', () => resolve('close'));
        xapi.on('error', (e) => resolve(`error: ${describe(e)}`));
      });
      xapi.close();
      const how = await withTimeout(closed, STEP_WAIT_MS, "neither 'close' nor 'error' after close()");
      await sleep(200); // an 'error' right behind the 'close' still counts
      if (how !== 'close') fail(`'${how}' instead of 'close'`);
      if (seen.errors.length > errorsBefore) fail(`'error' after close(): ${seen.errors.slice(errorsBefore).join('; ')}`);
      return {};
    },
  ],
]);
