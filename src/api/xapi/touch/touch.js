// roomd touch panel: a JSON-RPC 2.0 client of roomd's local xAPI (docs/xapi.md).
//
// Credentials come from the URL fragment (#user=...&password=..., removed at once), else from
// sessionStorage, else from the sign-in form. Everything on screen is driven by feedback
// (xFeedback/Subscribe with NotifyCurrentValue) merged into a local copy of the state; the bookings
// are re-listed when a Bookings event says they changed. Nothing polls the server.
'use strict';

(function () {
  const STORAGE_KEY = 'roomd.touch.credentials';
  const DEFAULT_USER = 'touchpanel';
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const REQUEST_TIMEOUT_MS = 20000;
  const NOTICE_MS = 15000;

  const SUBSCRIPTIONS = [
    ['Status', 'Bookings'],
    ['Status', 'Audio', 'Microphones'],
    ['Status', 'Webex'],
    ['Status', 'SystemUnit', 'State'],
    ['Status', 'Call'],
    ['Status', 'Standby'],
    ['Configuration', 'SystemUnit', 'Name'],
    ['Event', 'Bookings'],
    ['Event', 'CallDisconnect'],
    ['Event', 'UserInterface', 'Notice'],
  ];
  // Events after which the bookings list (and its order) may have changed.
  const RELIST_EVENTS = ['Updated', 'Start', 'End', 'StartTimeBuffer'];

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ credentials

  function base64url(text) {
    // UTF-8 first, as jsxapi does with Buffer.from(text).
    const bytes = new TextEncoder().encode(text);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function decode(part) {
    try {
      return decodeURIComponent(part);
    } catch (_) {
      return part;
    }
  }

  // #user=...&password=... ('+' stays a plus: decodeURIComponent, not URLSearchParams).
  function credentialsFromFragment() {
    const hash = location.hash.replace(/^#/, '');
    if (!hash) return null;
    const fields = {};
    for (const pair of hash.split('&')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      fields[decode(pair.slice(0, eq))] = decode(pair.slice(eq + 1));
    }
    if (!('password' in fields) && !('user' in fields)) return null;
    // Do not leave the password in the address bar or the history.
    history.replaceState(null, '', location.pathname + location.search);
    if (!fields.password) {
      if (fields.user) $('signin-user').value = fields.user;
      return null;
    }
    return { user: fields.user || DEFAULT_USER, password: fields.password };
  }

  function storedCredentials() {
    try {
      const c = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
      if (c && typeof c.user === 'string' && typeof c.password === 'string' && c.password) return c;
    } catch (_) {
      // unreadable: sign in again
    }
    return null;
  }

  function storeCredentials(c) {
    try {
      if (c) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch (_) {
      // private mode: the credentials just do not survive a reload
    }
  }

  // ------------------------------------------------------------------ JSON-RPC client

  class Rpc {
    constructor(ws, onNotification) {
      this.ws = ws;
      this.onNotification = onNotification;
      this.nextId = 1;
      this.pending = new Map();
    }

    call(method, params) {
      const id = 'tp-' + this.nextId++;
      const msg = { jsonrpc: '2.0', id, method };
      if (params !== undefined) msg.params = params;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject({ code: -32603, message: 'no answer to ' + method });
        }, REQUEST_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer });
        try {
          this.ws.send(JSON.stringify(msg));
        } catch (e) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject({ code: -32603, message: 'not connected' });
        }
      });
    }

    handle(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (_) {
        console.warn('xapi: unparsable message');
        return;
      }
      if (msg && typeof msg.method === 'string') {
        this.onNotification(msg.method, msg.params || {});
        return;
      }
      const id = msg && msg.id;
      const p = id !== undefined && this.pending.get(String(id));
      if (!p) return; // an answer to nothing we sent (or timed out): ignore
      this.pending.delete(String(id));
      clearTimeout(p.timer);
      if (msg.error) p.reject(msg.error);
      else p.resolve(msg.result);
    }

    failAll(message) {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject({ code: -32603, message });
      }
      this.pending.clear();
    }
  }

  // ------------------------------------------------------------------ local state

  const state = {
    status: {}, // merged Status / Configuration tree: { Status: {...}, Configuration: {...} }
    bookings: [], // from Bookings List
  };

  function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  function isGhost(item) {
    return isObject(item) && (item.ghost === 'True' || item.ghost === true);
  }

  // Merges a feedback fragment into the local tree. Lists are keyed by their lowercase `id`;
  // `{"id":k,"ghost":"True"}` removes item k.
  function merge(target, patch) {
    for (const key of Object.keys(patch)) {
      const value = patch[key];
      if (Array.isArray(value) || (isObject(value) && 'id' in value && Array.isArray(target[key]))) {
        target[key] = mergeList(Array.isArray(target[key]) ? target[key] : [], Array.isArray(value) ? value : [value]);
      } else if (isObject(value)) {
        if (!isObject(target[key])) target[key] = {};
        merge(target[key], value);
      } else {
        target[key] = value;
      }
    }
  }

  function mergeList(list, items) {
    const keyed = items.every((item) => isObject(item) && 'id' in item);
    if (!keyed) return items.slice(); // a plain value list: replace whole
    for (const item of items) {
      const index = list.findIndex((old) => isObject(old) && String(old.id) === String(item.id));
      if (isGhost(item)) {
        if (index >= 0) list.splice(index, 1);
      } else if (index >= 0) {
        merge(list[index], item);
      } else {
        const copy = {};
        merge(copy, item);
        list.push(copy);
      }
    }
    return list;
  }

  function at(tree, ...path) {
    let node = tree;
    for (const key of path) {
      if (!isObject(node)) return undefined;
      const match = Object.keys(node).find((k) => k.toLowerCase() === String(key).toLowerCase());
      if (match === undefined) return undefined;
      node = node[match];
    }
    return node;
  }

  function joinableIds() {
    const list = at(state.status, 'Status', 'Bookings', 'Joinable');
    const ids = new Set();
    const items = Array.isArray(list) ? list : isObject(list) ? [list] : [];
    for (const item of items) if (isObject(item) && item.Id) ids.add(String(item.Id));
    return ids;
  }

  // ------------------------------------------------------------------ connection

  let credentials = null;
  let verified = false; // these credentials opened a socket at least once
  let ws = null;
  let rpc = null;
  let generation = 0;
  let backoff = BACKOFF_MIN_MS;
  let retryTimer = null;
  let listing = null; // the Bookings List in flight
  let relistAgain = false;

  function setConnection(value) {
    document.body.dataset.connection = value;
    $('banner').hidden = value !== 'disconnected';
    renderMute();
    renderCall();
    renderStandby();
    renderBookings();
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    const gen = ++generation;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let socket;
    try {
      socket = new WebSocket(scheme + '://' + location.host + '/ws', [
        'auth-' + base64url(credentials.user + ':' + credentials.password),
      ]);
    } catch (e) {
      console.warn('xapi: cannot open the WebSocket', e);
      scheduleReconnect(gen);
      return;
    }
    ws = socket;
    let opened = false;
    const client = new Rpc(socket, (method, params) => {
      if (gen === generation) onNotification(method, params);
    });
    rpc = client;

    socket.onopen = () => {
      if (gen !== generation) return;
      opened = true;
      verified = true;
      storeCredentials(credentials);
      start(client, gen);
    };
    socket.onmessage = (ev) => {
      if (gen === generation) client.handle(ev.data);
    };
    socket.onerror = () => {
      // onclose follows and does the work; a console error here would only be noise
    };
    socket.onclose = () => {
      client.failAll('connection closed');
      if (gen !== generation) return;
      ws = null;
      rpc = null;
      if (!opened && !verified) {
        // Never got in with these credentials: a 403 (or 429) looks like any other failed
        // handshake to a browser, so ask again rather than retry for ever.
        signIn('Could not sign in: check the user and password (or roomd is not reachable).');
        return;
      }
      setConnection('disconnected');
      scheduleReconnect(gen);
    };
  }

  function scheduleReconnect(gen) {
    if (gen !== generation) return;
    const delay = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    $('banner-text').textContent = 'Disconnected — reconnecting in ' + Math.round(delay / 1000) + ' s…';
    retryTimer = setTimeout(() => {
      $('banner-text').textContent = 'Disconnected — reconnecting…';
      connect();
    }, delay);
  }

  // A fresh socket: forget what the previous one told us (removals while we were away never
  // arrive as ghosts), subscribe again and list the bookings.
  async function start(client, gen) {
    state.status = {};
    state.bookings = [];
    subscriptions.clear();
    const subscribed = SUBSCRIPTIONS.map((query) =>
      client.call('xFeedback/Subscribe', { Query: query, NotifyCurrentValue: true }).then(
        (result) => {
          if (result && result.Id !== undefined) subscriptions.set(String(result.Id), query);
        },
        (error) => console.warn('xapi: subscribe ' + query.join(' ') + ' failed: ' + describe(error)),
      ),
    );
    await Promise.all(subscribed);
    await listBookings();
    if (gen !== generation || rpc !== client) return; // dropped meanwhile
    backoff = BACKOFF_MIN_MS;
    setConnection('connected');
  }

  // ------------------------------------------------------------------ feedback

  const subscriptions = new Map(); // subscription Id -> query

  function onNotification(method, params) {
    if (method !== 'xFeedback/Event') return;
    const query = subscriptions.get(String(params.Id));
    if (!query) return; // not one of ours (or from before a reconnect)
    if (query[0] === 'Event') {
      onEvent(params.Event || {});
      return;
    }
    const patch = {};
    for (const root of ['Status', 'Configuration']) if (root in params) patch[root] = params[root];
    merge(state.status, patch);
    renderStatus();
  }

  function onEvent(event) {
    const moved = at(event, 'UserInterface', 'Notice', 'Text');
    if (typeof moved === 'string') notice(moved, 'ok');
    const ended = at(event, 'CallDisconnect');
    if (isObject(ended)) {
      const cause = String(ended.CauseType || '');
      const failed = cause === 'NetworkError' || cause === 'MoveFailed';
      notice('Call ended' + (ended.CauseString ? ': ' + ended.CauseString : ''), failed ? 'error' : 'ok');
    }
    const bookings = at(event, 'Bookings');
    if (!isObject(bookings)) return;
    if (Object.keys(bookings).some((k) => RELIST_EVENTS.some((e) => e.toLowerCase() === k.toLowerCase()))) {
      listBookings();
    }
  }

  // One Bookings List at a time; a change while it runs lists once more afterwards.
  function listBookings() {
    if (listing) {
      relistAgain = true;
      return listing;
    }
    const client = rpc;
    if (!client) return Promise.resolve();
    listing = client
      .call('xCommand/Bookings/List', {})
      .then(
        (result) => {
          if (client !== rpc) return;
          const r = (result && result.BookingsListResult) || result || {};
          state.bookings = Array.isArray(r.Booking) ? r.Booking : r.Booking ? [r.Booking] : [];
          renderBookings();
        },
        (error) => console.warn('xapi: Bookings List failed: ' + describe(error)),
      )
      .finally(() => {
        listing = null;
        if (relistAgain) {
          relistAgain = false;
          listBookings();
        }
      });
    return listing;
  }

  // ------------------------------------------------------------------ rendering

  function two(n) {
    return String(n).padStart(2, '0');
  }

  function hhmm(date) {
    return two(date.getHours()) + ':' + two(date.getMinutes());
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  function dayLabel(date, now) {
    if (sameDay(date, now)) return '';
    const tomorrow = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
    if (sameDay(date, tomorrow)) return 'Tomorrow ';
    return DAYS[date.getDay()] + ' ' + date.getDate() + ' ' + MONTHS[date.getMonth()] + ' ';
  }

  let lastMinute = '';

  function tick() {
    const now = new Date();
    const text = hhmm(now);
    if (text !== lastMinute) {
      lastMinute = text;
      $('clock').textContent = text;
      renderBookings(); // bookings that just ended drop off, "Now" moves on
    }
  }

  function setPill(el, text, level) {
    el.textContent = text;
    el.dataset.state = level;
  }

  function renderStatus() {
    const name = at(state.status, 'Configuration', 'SystemUnit', 'Name');
    $('system-name').textContent = typeof name === 'string' && name ? name : '\u00a0';

    const webex = at(state.status, 'Status', 'Webex', 'Status');
    const level = webex === 'Registered' ? 'ok' : webex === 'Error' ? 'bad' : webex ? 'warn' : 'unknown';
    setPill($('registration'), 'Webex: ' + (webex ? spaced(webex) : '…'), level);

    const system = at(state.status, 'Status', 'SystemUnit', 'State', 'System');
    const sys = $('system-state');
    sys.hidden = !system || system === 'Initialized';
    if (system) setPill(sys, spaced(String(system)), system === 'Initialized' ? 'ok' : 'warn');

    renderMute();
    renderCall();
    renderStandby();
    renderBookings();
  }

  // The first call: who, its state, and what can be done with it.
  function renderCall() {
    const calls = at(state.status, 'Status', 'Call');
    const live = Array.isArray(calls) ? calls.filter((c) => isObject(c) && !isGhost(c) && c.Status) : [];
    const panel = $('call');
    const call = live[0];
    panel.hidden = !call;
    if (!call) return;
    const who = call.DisplayName || call.RemoteNumber || 'Call';
    $('call-name').textContent = who;
    $('call-state').textContent = spaced(String(call.Status));
    panel.dataset.callId = String(call.id);
    const ringing = call.Status === 'Ringing';
    $('call-accept').hidden = !ringing;
    $('call-leave').textContent = ringing ? 'Decline' : 'Leave';
  }

  function callCommand(command) {
    const id = Number($('call').dataset.callId);
    if (!rpc || !id) return;
    rpc
      .call('xCommand/Call/' + command, { CallId: id })
      .catch((error) => notice('Could not ' + command.toLowerCase() + ': ' + describe(error), 'error'));
  }

  // "NotActivated" -> "Not activated"
  function spaced(word) {
    return word.replace(/([a-z])([A-Z])/g, (_, a, b) => a + ' ' + b.toLowerCase());
  }

  function micMute() {
    return at(state.status, 'Status', 'Audio', 'Microphones', 'Mute');
  }

  // Standby: the panel goes dark with one message; a touch anywhere wakes the room.
  function renderStandby() {
    const asleep = at(state.status, 'Status', 'Standby', 'State') === 'Standby';
    $('standby-layer').hidden = !asleep;
    $('standby').disabled = document.body.dataset.connection !== 'connected' || asleep;
  }

  function standbyCommand(command) {
    if (!rpc) return;
    rpc
      .call('xCommand/Standby/' + command, {})
      .catch((error) => notice('Standby: ' + describe(error), 'error'));
  }

  function renderMute() {
    const mute = micMute();
    const button = $('mute');
    const connected = document.body.dataset.connection === 'connected';
    button.dataset.mute = mute === 'On' ? 'on' : mute === 'Off' ? 'off' : 'unknown';
    button.disabled = !connected || (mute !== 'On' && mute !== 'Off') || muteBusy;
    $('mute-label').textContent = mute === 'On' ? 'Unmute' : mute === 'Off' ? 'Mute' : 'Microphones';
    $('mute-state').textContent =
      mute === 'On' ? 'Microphones are muted' : mute === 'Off' ? 'Microphones are on' : '\u00a0';
    $('mute-state').dataset.mute = button.dataset.mute;
  }

  let muteBusy = false;

  function toggleMute() {
    const mute = micMute();
    if (!rpc || (mute !== 'On' && mute !== 'Off')) return;
    const command = mute === 'On' ? 'xCommand/Audio/Microphones/Unmute' : 'xCommand/Audio/Microphones/Mute';
    muteBusy = true;
    renderMute();
    rpc
      .call(command, {})
      .catch((error) => notice('Could not ' + (mute === 'On' ? 'unmute' : 'mute') + ': ' + describe(error), 'error'))
      .finally(() => {
        muteBusy = false;
        renderMute(); // the state itself changes through feedback
      });
  }

  function organizer(b) {
    const o = b.Organizer || {};
    const name = [o.FirstName, o.LastName].filter((s) => typeof s === 'string' && s).join(' ');
    return name || o.Email || '';
  }

  function startMs(b) {
    const t = Date.parse((b.Time || {}).StartTime);
    return Number.isNaN(t) ? Infinity : t;
  }

  function endMs(b) {
    const t = Date.parse((b.Time || {}).EndTime);
    return Number.isNaN(t) ? Infinity : t;
  }

  function dialNumber(b) {
    const calls = b.DialInfo && b.DialInfo.Calls && b.DialInfo.Calls.Call;
    const first = Array.isArray(calls) ? calls[0] : calls;
    return first && typeof first.Number === 'string' && first.Number ? first.Number : undefined;
  }

  const joining = new Set(); // booking ids with a Dial in flight

  let shownBookings = null; // what the list shows now, to skip re-renders that change nothing

  function renderBookings() {
    const now = new Date();
    const joinable = joinableIds();
    const current = at(state.status, 'Status', 'Bookings', 'Current', 'Id');
    const connected = document.body.dataset.connection === 'connected';
    const rows = state.bookings
      .filter((b) => b && typeof b.Id === 'string' && endMs(b) > now.getTime())
      .sort((a, b) => startMs(a) - startMs(b))
      .map((b) => {
        const start = new Date(startMs(b));
        const end = new Date(endMs(b));
        let when = '';
        if (Number.isFinite(start.getTime())) {
          when = dayLabel(start, now) + hhmm(start) + (Number.isFinite(end.getTime()) ? '\u2013' + hhmm(end) : '');
        }
        return {
          id: b.Id,
          when,
          title: b.Title || '(no title)',
          organizer: organizer(b),
          now: b.Id === current || (startMs(b) <= now.getTime() && endMs(b) > now.getTime()),
          join: joinable.has(b.Id),
          disabled: !connected || joining.has(b.Id),
        };
      });
    $('no-bookings').hidden = rows.length > 0 || !connected;
    const signature = JSON.stringify(rows);
    if (signature === shownBookings) return;
    shownBookings = signature;

    $('booking-list').replaceChildren(
      ...rows.map((row) => {
        const li = document.createElement('li');
        li.className = 'booking';
        li.dataset.bookingId = row.id;
        if (row.now) li.classList.add('now');

        const when = document.createElement('div');
        when.className = 'when';
        when.textContent = row.when;

        const what = document.createElement('div');
        what.className = 'what';
        const title = document.createElement('div');
        title.className = 'title';
        title.textContent = row.title;
        const who = document.createElement('div');
        who.className = 'organizer';
        who.textContent = row.organizer;
        what.append(title, who);

        li.append(when, what);
        if (row.join) {
          const button = document.createElement('button');
          button.type = 'button';
          button.className = 'join';
          button.dataset.bookingId = row.id;
          button.textContent = 'Join';
          button.disabled = row.disabled;
          li.append(button);
        }
        return li;
      }),
    );
  }

  function join(id) {
    const booking = state.bookings.find((b) => b.Id === id);
    if (!rpc || !booking || joining.has(id)) return;
    const params = { BookingId: id };
    const number = dialNumber(booking);
    if (number !== undefined) params.Number = number;
    const title = booking.Title || id;
    joining.add(id);
    renderBookings();
    rpc
      .call('xCommand/Dial', params)
      .then(
        () => notice('Joining ' + title + '\u2026', 'ok'),
        (error) => notice('Could not join: ' + describe(error), 'error'),
      )
      .finally(() => {
        joining.delete(id);
        renderBookings();
      });
  }

  let noticeTimer = null;

  function notice(text, level) {
    const el = $('notice');
    el.textContent = text;
    el.dataset.level = level;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      el.textContent = '';
      delete el.dataset.level;
    }, NOTICE_MS);
  }

  function describe(error) {
    if (error && typeof error.message === 'string') return error.message;
    return String(error);
  }

  // ------------------------------------------------------------------ sign-in

  function signIn(message) {
    generation++; // orphan any socket still around
    clearTimeout(retryTimer);
    if (ws) ws.close();
    ws = null;
    rpc = null;
    credentials = null;
    verified = false;
    storeCredentials(null);
    document.body.dataset.connection = 'disconnected';
    $('banner').hidden = true;
    const err = $('signin-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('signin-layer').hidden = false;
    $('signin-password').value = '';
    $('signin-password').focus();
  }

  // `known`: these credentials worked before (sessionStorage keeps only those), so a failed
  // handshake means roomd is away, not a wrong password: keep retrying.
  function begin(c, known) {
    credentials = c;
    verified = known;
    backoff = BACKOFF_MIN_MS;
    $('signin-layer').hidden = true;
    setConnection('connecting');
    connect();
  }

  // ------------------------------------------------------------------ start

  function init() {
    $('mute').addEventListener('click', toggleMute);
    $('standby').addEventListener('click', () => standbyCommand('Activate'));
    $('standby-layer').addEventListener('click', () => standbyCommand('Deactivate'));
    $('call-accept').addEventListener('click', () => callCommand('Accept'));
    $('call-leave').addEventListener('click', () =>
      callCommand($('call-leave').textContent === 'Decline' ? 'Reject' : 'Disconnect'),
    );
    $('booking-list').addEventListener('click', (ev) => {
      const button = ev.target instanceof Element && ev.target.closest('button.join');
      if (button) join(button.dataset.bookingId);
    });
    $('banner-signin').addEventListener('click', () => signIn(''));
    $('signin').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const user = $('signin-user').value.trim() || DEFAULT_USER;
      const password = $('signin-password').value;
      if (!password) return;
      begin({ user, password }, false);
    });

    tick();
    setInterval(tick, 1000);

    const fromFragment = credentialsFromFragment();
    const c = fromFragment || storedCredentials();
    if (c) {
      $('signin-user').value = c.user;
      begin(c, !fromFragment);
    } else {
      signIn('');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
