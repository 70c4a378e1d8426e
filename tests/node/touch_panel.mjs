// The touch panel (src/api/xapi/touch) in headless Chromium, against a running roomd + roomd-sim.
// Driven by the Rust test harness, which reads stdout.
//
// Environment:
//   ROOMD_TOUCH_URL      the panel's full URL, credentials included:
//                        http://127.0.0.1:PORT/touch#user=touchpanel&password=...
//   ROOMD_SIM_ADMIN      http://127.0.0.1:PORT of roomd-sim's admin API
//   ROOMD_ARTEFACT_DIR   where the screenshots go (created)
//   ROOMD_CHROMIUM       optional, default /usr/bin/chromium
//
// Output: one JSON line per step ({"step":"<name>","ok":true,...}); the first failure prints
// {"step":"<name>","ok":false,"error":"..."} and exits 1; 120 s overall bound (exit 2, the line
// names the step that hung). Any console error or page error on the page fails the run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { env, fail, postBooking, runSteps } from './lib.mjs';

const touchUrl = env('ROOMD_TOUCH_URL');
const simAdmin = env('ROOMD_SIM_ADMIN');
const artefacts = env('ROOMD_ARTEFACT_DIR');
const executablePath = process.env.ROOMD_CHROMIUM || '/usr/bin/chromium';

const OBTP_WINDOW_SECS = 300;
const WAIT_MS = 15000;
const JOIN_WAIT_MS = 30000;

let browser; // the persistent context (closing it ends Chromium)
let profile;
let page;
const pageErrors = [];
const ignoredErrors = [];
let title;
let bookingId;

function checkPageErrors() {
  if (pageErrors.length > 0) fail(`page errors: ${pageErrors.join(' | ')}`);
}

// Playwright puts a long call log into its messages; the first line says what happened.
function short(e) {
  return String((e && e.message) || e).split('\n')[0];
}

async function wait(what, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e && e.stepFailed) throw e;
    return fail(`${what}: ${short(e)}`);
  }
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  browser = undefined;
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  profile = undefined;
}

await runSteps(
  120000,
  [
    [
      'launch',
      async () => {
        fs.mkdirSync(artefacts, { recursive: true });
        profile = fs.mkdtempSync(path.join(os.tmpdir(), 'roomd-touch-chromium-'));
        // Playwright owns --user-data-dir: a persistent context on a fresh temporary profile.
        browser = await chromium.launchPersistentContext(profile, {
          executablePath,
          headless: true,
          viewport: { width: 1280, height: 800 },
          args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
        });
        page = browser.pages()[0] || (await browser.newPage());
        page.on('console', (msg) => {
          if (msg.type() !== 'error') return;
          const where = msg.location().url || '';
          // Chromium asks for /favicon.ico on its own; roomd serves only /touch*.
          if (/\/favicon\.ico$/.test(where)) ignoredErrors.push(`${msg.text()} (${where})`);
          else pageErrors.push(`console: ${msg.text()}${where ? ` (${where})` : ''}`);
        });
        page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
        return { chromium: browser.browser()?.version() ?? null };
      },
    ],
    [
      'open',
      async () => {
        const res = await wait('loading the page', () => page.goto(touchUrl, { waitUntil: 'load', timeout: WAIT_MS }));
        if (!res || !res.ok()) fail(`GET ${touchUrl.replace(/#.*/, '')}: HTTP ${res && res.status()}`);
        return { status: res.status(), csp: res.headers()['content-security-policy'] || null };
      },
    ],
    [
      'connected',
      async () => {
        await wait('body[data-connection=connected]', () =>
          page.waitForSelector('body[data-connection="connected"]', { state: 'attached', timeout: WAIT_MS }),
        );
        const fragment = await page.evaluate(() => location.hash);
        if (fragment) fail(`the credentials fragment is still in the URL: ${fragment.slice(0, 12)}…`);
        checkPageErrors();
        return {};
      },
    ],
    [
      'bookings',
      async () => {
        await wait('a booking row', () => page.waitForSelector('#booking-list [data-booking-id]', { timeout: WAIT_MS }));
        const rows = await page.$$eval('#booking-list li[data-booking-id]', (lis) =>
          lis.map((li) => ({ id: li.dataset.bookingId, title: li.querySelector('.title')?.textContent })),
        );
        if (rows.length < 1) fail('no booking rows');
        const joinButtons = await page.$$eval('button.join', (bs) =>
          bs.filter((b) => b.offsetParent !== null).map((b) => b.dataset.bookingId),
        );
        const systemName = await page.textContent('#system-name');
        const registration = await page.textContent('#registration');
        return { rows: rows.length, ids: rows.map((r) => r.id), joinButtons, systemName: systemName.trim(), registration };
      },
    ],
    [
      'new_booking',
      async () => {
        title = `Touch OBTP ${process.pid}-${Date.now()}`;
        const start = new Date(Date.now() + (OBTP_WINDOW_SECS + 4) * 1000);
        const created = await postBooking(simAdmin, {
          title,
          start: start.toISOString(),
          duration_mins: 30,
          webex_uri: `touch-${Date.now()}@webex.sim.invalid`,
        });
        return { title, start: start.toISOString(), meetingId: (created.booking && created.booking.id) || created.id };
      },
    ],
    [
      'booking_row',
      async () => {
        const row = await wait(`a row titled "${title}"`, () =>
          page.waitForSelector(`#booking-list li[data-booking-id]:has(.title:text-is(${JSON.stringify(title)}))`, {
            timeout: WAIT_MS,
          }),
        );
        bookingId = await row.getAttribute('data-booking-id');
        if (!/^webex-\d+$/.test(bookingId || '')) fail(`row data-booking-id is ${JSON.stringify(bookingId)}`);
        // Listed before its OBTP window opens (4 s after the POST): no Join yet.
        const early = await page.$$eval(`button.join[data-booking-id="${bookingId}"]`, (bs) =>
          bs.filter((b) => b.offsetParent !== null).length,
        );
        if (early > 0) fail(`${bookingId} shows a Join button before its OBTP window`);
        return { bookingId };
      },
    ],
    [
      'join_button',
      async () => {
        const selector = `#booking-list li[data-booking-id="${bookingId}"] button.join[data-booking-id="${bookingId}"]`;
        await wait(`the Join button of ${bookingId}`, () =>
          page.waitForSelector(selector, { state: 'visible', timeout: JOIN_WAIT_MS }),
        );
        const text = (await page.textContent(selector)).trim();
        if (text !== 'Join') fail(`the Join button reads ${JSON.stringify(text)}`);
        const shot = path.join(artefacts, 'touch-panel.png');
        await page.screenshot({ path: shot });
        checkPageErrors();
        return { bookingId, screenshot: shot };
      },
    ],
    [
      'join',
      async () => {
        await page.click(`button.join[data-booking-id="${bookingId}"]`, { timeout: WAIT_MS });
        await wait('#notice to show the outcome', () =>
          page.waitForFunction(() => document.querySelector('#notice')?.textContent.trim().length > 0, null, {
            timeout: WAIT_MS,
          }),
        );
        const notice = (await page.textContent('#notice')).trim();
        const shot = path.join(artefacts, 'touch-panel-after-join.png');
        await page.screenshot({ path: shot });
        if (!notice.startsWith('Joining ')) fail(`unexpected notice ${JSON.stringify(notice)}`);
        checkPageErrors();
        return { bookingId, notice, screenshot: shot };
      },
    ],
    [
      'in_call',
      async () => {
        await wait('#call to show the call Connected', () =>
          page.waitForFunction(
            () => !document.querySelector('#call').hidden && document.querySelector('#call-state').textContent === 'Connected',
            null,
            { timeout: WAIT_MS },
          ),
        );
        const shot = path.join(artefacts, 'touch-panel-in-call.png');
        await page.screenshot({ path: shot });
        const name = (await page.textContent('#call-name')).trim();
        await page.click('#call-leave', { timeout: WAIT_MS });
        await wait('#call to hide after Leave', () =>
          page.waitForSelector('#call', { state: 'hidden', timeout: WAIT_MS }),
        );
        await wait('#notice to say the call ended', () =>
          page.waitForFunction(() => document.querySelector('#notice')?.textContent.startsWith('Call ended'), null, {
            timeout: WAIT_MS,
          }),
        );
        checkPageErrors();
        return { name, screenshot: shot };
      },
    ],
    [
      'standby',
      async () => {
        // The Standby button darkens the panel; a touch on the dark layer wakes the room.
        await page.click('#standby', { timeout: WAIT_MS });
        await wait('#standby-layer to show', () =>
          page.waitForSelector('#standby-layer', { state: 'visible', timeout: WAIT_MS }),
        );
        const shot = path.join(artefacts, 'touch-panel-standby.png');
        await page.screenshot({ path: shot });
        await page.click('#standby-layer', { timeout: WAIT_MS });
        await wait('#standby-layer to hide after the touch', () =>
          page.waitForSelector('#standby-layer', { state: 'hidden', timeout: WAIT_MS }),
        );
        checkPageErrors();
        return { screenshot: shot };
      },
    ],
    [
      'close',
      async () => {
        checkPageErrors();
        await cleanup();
        return { ignoredConsoleErrors: ignoredErrors };
      },
    ],
  ],
  cleanup,
);
