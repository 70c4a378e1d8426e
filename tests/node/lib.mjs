// Shared by the node tests: the JSON-line step protocol the Rust harness reads, and small helpers.
//
// Every step prints {"step":"<name>","ok":true,...details} on success. The first failure prints
// {"step":"<name>","ok":false,"error":"..."} and exits 1; when the whole run exceeds its bound the
// line names the step that hung and the exit code is 2.

/** A step failure with a message of our own (not an exception from below). */
export function fail(message) {
  const e = new Error(message);
  e.stepFailed = true;
  throw e;
}

export function describe(e) {
  if (e === undefined || e === null) return String(e);
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  if (typeof e.message === 'string') return e.code !== undefined ? `${e.code}: ${e.message}` : e.message;
  try {
    return JSON.stringify(e);
  } catch (_) {
    return String(e);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let exiting = false;

function line(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function exit(code) {
  // Let stdout drain (a pipe to the harness) before leaving.
  process.stdout.write('', () => process.exit(code));
}

/** A required environment variable; missing: the `env` step fails (exit 1). */
export function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    line({ step: 'env', ok: false, error: `${name} is not set` });
    process.exit(1);
  }
  return v;
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (after ${ms / 1000} s)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Calls `fn` until it returns something other than undefined. `fn` does its own waiting. */
export async function until(fn) {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
  }
}

/** POST {admin}/admin/calendar/bookings; the sim's JSON answer. */
export async function postBooking(admin, body) {
  const res = await fetch(`${admin.replace(/\/+$/, '')}/admin/calendar/bookings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  if (!res.ok) fail(`POST /admin/calendar/bookings: HTTP ${res.status} ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch (_) {
    return fail(`POST /admin/calendar/bookings: not JSON: ${text.slice(0, 300)}`);
  }
}

/**
 * Runs `steps` ([name, async fn] pairs; fn returns extra fields for the step's line) in order
 * under one overall bound of `totalMs`. `cleanup` (async, best effort, at most 10 s) runs on every
 * exit path. Never returns.
 */
export async function runSteps(totalMs, steps, cleanup = async () => {}) {
  let current = 'start';
  const finish = async (code, obj) => {
    if (exiting) return;
    exiting = true;
    if (obj) line(obj);
    try {
      await withTimeout(Promise.resolve().then(cleanup), 10000, 'cleanup');
    } catch (e) {
      process.stderr.write(`cleanup: ${describe(e)}\n`);
    }
    exit(code);
  };
  const watchdog = setTimeout(() => {
    finish(2, { step: current, ok: false, error: `timed out: the run exceeded ${totalMs / 1000} s in step ${current}` });
  }, totalMs);
  const crash = (e) => finish(1, { step: current, ok: false, error: `unexpected: ${describe(e)}` });
  process.on('unhandledRejection', crash);
  process.on('uncaughtException', crash);
  for (const [name, fn] of steps) {
    current = name;
    let details;
    try {
      details = await fn();
    } catch (e) {
      clearTimeout(watchdog);
      await finish(1, { step: name, ok: false, error: describe(e) });
      return new Promise(() => {});
    }
    if (exiting) return new Promise(() => {});
    line({ step: name, ok: true, ...(details || {}) });
  }
  clearTimeout(watchdog);
  await finish(0);
  return new Promise(() => {});
}
