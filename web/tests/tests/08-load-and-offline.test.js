// The first load: the page opens on a light first screen (the app's connect step as
// static HTML, made usable by web/boot.js) and loads the Yew app right after. Measured on
// a phone profile (Chrome's "Slow 4G", 4x slower CPU) against `fota serve`, which sends
// the build's Brotli files: the bytes on the wire of everything requested before the
// first screen is usable (at most 120,000) and the time to usable; then the bytes and
// the time until the app has taken over. The hand-off: the app takes over pixel for
// pixel, keeps the form and the focus, and carries out a Connect clicked before it was
// ready (the in-page simulated device, a WebSocket address typed without ws://, a Web
// Serial port chosen in the click), with the WebAssembly's download shown meanwhile.
// Then offline: after one visit the service worker keeps the app, the module loaded
// when needed included, and a whole update on the in-page simulated device works with
// no network; it drops the hashed files of earlier builds. And the encoder in its
// worker: what a 240 KiB firmware image takes to encode, while the page keeps drawing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve, launch, openApp, CHROMIUM, startSimServer, axeViolations } from '../helpers.js';
import { installFakeSerial } from '../fake-serial.js';

/** The first screen's budget: bytes on the wire of everything requested before it is
 *  usable (the page, the stylesheet, boot.js, the icon). */
const FIRST_SCREEN_MAX = 120000;
/** Everything until the app has taken over stays under this (299 KB measured: the
 *  first screen, the app's glue and WebAssembly); more is a regression. */
const APP_LOAD_MAX = 303000;

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

/** Chrome DevTools' "Slow 4G" preset, and its 4x CPU slowdown (a mid-range phone). */
async function slowPhone(cdp) {
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 562.5, downloadThroughput: (1.6 * 1024 * 1024) / 8 * 0.9, uploadThroughput: (750 * 1024) / 8 * 0.9,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
}

test('first load: the first screen is usable with at most 120,000 bytes on the wire (slow 4G, 4x slower CPU); then the app', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await slowPhone(cdp);
  // Each request: when it was sent (wall clock, as performance.timeOrigin), its bytes on
  // the wire (headers included) once finished.
  const files = new Map();
  cdp.on('Network.requestWillBeSent', (e) => files.set(e.requestId, { url: e.request.url, sentAt: e.wallTime * 1000 }));
  cdp.on('Network.responseReceived', (e) => {
    const f = files.get(e.requestId);
    if (f) f.encoding = e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] || '';
  });
  cdp.on('Network.loadingFinished', (e) => { const f = files.get(e.requestId); if (f) f.bytes = e.encodedDataLength; });
  await page.goto(server.url, { waitUntil: 'commit' });
  await page.waitForSelector('html[data-ready]', { timeout: 120000 });
  // The first screen works before the app is there: a choice made now reaches the app.
  const early = await page.evaluate(() => document.documentElement.dataset.app === undefined);
  await page.waitForSelector('html[data-app]', { timeout: 120000 });
  // The service worker starts fetching the offline copy once the app runs: not counted.
  const t = await page.evaluate(() => ({
    origin: performance.timeOrigin,
    usable: performance.getEntriesByName('fota-ready')[0].startTime,
    app: performance.getEntriesByName('fota-app')[0].startTime,
  }));
  const all = [...files.values()].filter((f) => f.bytes !== undefined && f.sentAt <= t.origin + t.app);
  const before = all.filter((f) => f.sentAt <= t.origin + t.usable);
  const sum = (list) => list.reduce((n, f) => n + f.bytes, 0);
  const name = (f) => new URL(f.url).pathname;
  for (const f of all) {
    console.log(`  ${name(f)}: ${f.bytes} bytes on the wire${f.encoding ? ` (${f.encoding})` : ''}, requested ${before.includes(f) ? 'before' : 'after'} the first screen was usable`);
  }
  const screen = sum(before);
  const app = sum(all);
  console.log(`first screen: ${screen} bytes (${(screen / 1000).toFixed(1)} KB) on the wire, usable after ${(t.usable / 1000).toFixed(2)} s on slow 4G with a 4x slower CPU (${before.map(name).join(' ')})`);
  console.log(`the app ready: ${app} bytes (${(app / 1000).toFixed(0)} KB) on the wire in all, after ${(t.app / 1000).toFixed(2)} s`);
  assert.ok(early, 'the first screen was usable before the app took over');
  assert.ok(before.length >= 3, `the page, its stylesheet and boot.js: ${before.map(name).join(' ')}`);
  const wasm = all.find((f) => /fota-web-[0-9a-f]{16}_bg\.wasm$/.test(f.url));
  assert.ok(wasm, 'the app\'s WebAssembly was loaded');
  assert.equal(wasm.encoding, 'br', 'the WebAssembly travels compressed');
  assert.ok(!before.includes(wasm), 'the WebAssembly is requested after the first screen is usable');
  assert.ok(!before.some((f) => /fota-web-[0-9a-f]{16}\.js$/.test(f.url)), 'so is its glue');
  const extras = all.filter((f) => /fota-web-extras|encoder-worker/.test(f.url)).map(name);
  assert.deepEqual(extras, [], 'the module loaded when needed is not part of the first load');
  assert.ok(screen <= FIRST_SCREEN_MAX, `the first screen: ${screen} bytes on the wire, over ${FIRST_SCREEN_MAX}`);
  assert.ok(app <= APP_LOAD_MAX, `until the app is ready: ${app} bytes on the wire, over the ${APP_LOAD_MAX} of the last build`);
  await context.close();
});

/** A page whose app's glue is held back until `release()`: the first screen alone. */
async function firstScreenOnly(url, { colorScheme = 'light', viewport = { width: 1366, height: 768 }, mobile = false, init, bypassCSP = false } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, isMobile: mobile, hasTouch: mobile, deviceScaleFactor: mobile ? 2 : 1, serviceWorkers: 'block', bypassCSP });
  if (init) await context.addInitScript(init.script, init.arg);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route(/\/fota-web-[0-9a-f]{16}\.js$/, async (route) => { await held; await route.continue(); });
  await page.goto(url);
  await page.waitForSelector('html[data-ready]');
  return { page, release, context };
}

/** Whether the first screen is still the one shown (the app not there). */
const onFirstScreen = (page) => page.evaluate(() => document.getElementById('first') !== null && document.documentElement.dataset.app === undefined);

test('the app takes over from the first screen pixel for pixel (desktop light, phone dark, a manifest, a saved bridge address, Web Serial with and without the API), and both pass axe-core', async () => {
  const cases = [
    { what: 'desktop, light', url: server.url, opts: {} },
    { what: 'phone, dark', url: server.url, opts: { colorScheme: 'dark', viewport: { width: 390, height: 844 }, mobile: true } },
    // The app logs the manifest it read: the same screen down to the log.
    { what: 'desktop, a manifest', url: `${server.url}?manifest=example/manifest.json`, opts: {}, upTo: '.columns' },
    { what: 'phone, WebSocket chosen last time', url: server.url, opts: { viewport: { width: 360, height: 740 }, mobile: true, init: { script: () => localStorage.setItem('fota-web.settings', JSON.stringify({ transport: 'ws', ws_url: '127.0.0.1:9321' })) } } },
    { what: 'Web Serial picked, 921600 baud, no negotiation', url: server.url, opts: { init: { script: () => { if (!navigator.serial) Object.defineProperty(Navigator.prototype, 'serial', { value: new EventTarget(), configurable: true }); localStorage.setItem('fota-web.settings', JSON.stringify({ transport: 'serial', baud: 921600, negotiate: false })); } } }, shows: '#baud' },
    // A browser without Web Serial, whose user picks it anyway: what to do instead.
    { what: 'no Web Serial, picked', url: server.url, opts: { init: { script: () => { delete Navigator.prototype.serial; } } }, pick: /USB serial \(Web Serial\)/ },
  ];
  for (const c of cases) {
    const { page, release, context } = await firstScreenOnly(c.url, { ...c.opts, bypassCSP: true });
    if (c.url.includes('manifest')) await page.locator('[data-testid=manifest-name]').waitFor();
    if (c.pick) {
      await page.getByRole('radio', { name: c.pick }).check();
      await page.locator('[data-testid=no-web-serial]').waitFor();
      await page.locator('body').click({ position: { x: 1, y: 1 } }); // no focus ring
    }
    assert.ok(await onFirstScreen(page), c.what);
    if (c.shows) assert.equal(await page.locator(c.shows).inputValue(), '921600', `${c.what}: the saved rate`);
    const violations = await axeViolations(page);
    assert.deepEqual(violations, [], `${c.what}, first screen: ${JSON.stringify(violations, null, 1)}`);
    const snap = async () => {
      if (!c.upTo) return page.screenshot({ fullPage: true });
      const bottom = await page.locator(c.upTo).evaluate((e) => e.getBoundingClientRect().bottom + window.scrollY);
      return page.screenshot({ fullPage: true, clip: { x: 0, y: 0, width: page.viewportSize().width, height: Math.ceil(bottom) } });
    };
    const before = await snap();
    release();
    await page.waitForSelector('html[data-app]');
    assert.equal(await page.locator('.app').count(), 1, 'the first screen is gone');
    const after = await snap();
    if (!before.equals(after)) {
      fs.mkdirSync(path.join(os.tmpdir(), 'fota-takeover'), { recursive: true });
      fs.writeFileSync(path.join(os.tmpdir(), 'fota-takeover', `${c.what}-first.png`), before);
      fs.writeFileSync(path.join(os.tmpdir(), 'fota-takeover', `${c.what}-app.png`), after);
    }
    assert.ok(before.equals(after), `${c.what}: the app looks different from the first screen (both in ${os.tmpdir()}/fota-takeover)`);
    assert.deepEqual(await axeViolations(page), [], `${c.what}, the app`);
    assert.deepEqual(page.errors, [], c.what);
    await context.close();
  }
});

test('the hand-off keeps the form and the keyboard focus (a half-typed bridge address, its caret)', async () => {
  const { page, release, context } = await firstScreenOnly(server.url);
  await page.getByRole('radio', { name: /WebSocket/ }).check();
  await page.locator('input[name=transport][value=sim]').focus();
  await page.locator('#ws-url').fill('127.0.0.1:93');
  await page.locator('#ws-url').evaluate((e) => e.setSelectionRange(4, 4));
  assert.equal(JSON.parse(await page.evaluate(() => localStorage.getItem('fota-web.settings'))).ws_url, '127.0.0.1:93');
  release();
  await page.waitForSelector('html[data-app]');
  const now = await page.evaluate(() => ({ id: document.activeElement.id, value: document.activeElement.value, caret: document.activeElement.selectionStart, first: document.getElementById('first') !== null }));
  assert.deepEqual(now, { id: 'ws-url', value: '127.0.0.1:93', caret: 4, first: false });
  // Typing goes on in the app's field.
  await page.keyboard.type('21', { delay: 0 });
  await page.keyboard.press('End');
  assert.equal(await page.locator('#ws-url').inputValue(), '127.210.0.1:93');
  assert.ok(await page.getByRole('radio', { name: /WebSocket/ }).isChecked());
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a Connect clicked before the app is ready: the WebAssembly\'s download is shown, then the simulated device connects without a second click', async () => {
  const { page, release, context } = await firstScreenOnly(server.url, { viewport: { width: 390, height: 844 }, mobile: true });
  // A slow line, so that the download takes a while.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 40, downloadThroughput: 150 * 1024, uploadThroughput: 150 * 1024 });
  await page.evaluate(() => {
    window.__shown = [];
    new MutationObserver(() => {
      const t = document.querySelector('.first-load')?.textContent;
      if (t && window.__shown.at(-1) !== t) window.__shown.push(t);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole('button', { name: 'Connect' }).click();
  assert.ok(await onFirstScreen(page), 'clicked on the first screen');
  assert.equal(await page.getByRole('button', { name: 'Connecting…' }).isDisabled(), true);
  release();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 60000 });
  const shown = await page.evaluate(() => window.__shown);
  console.log(`while the app loaded: ${shown[0]} … ${shown.at(-1)} (${shown.length} updates)`);
  const total = Number(await page.evaluate(() => document.querySelector('script[data-wasm-size]').dataset.wasmSize));
  const counts = shown.map((t) => /^Loading the updater: ([\d.]+) (B|KiB) of ([\d.]+) KiB/.exec(t)).filter(Boolean);
  assert.ok(counts.length >= 3, `the download's progress was shown: ${shown.join(' | ')}`);
  assert.equal(Number(counts[0][3]), Math.round(total / 1024), 'of the WebAssembly\'s size');
  const bytes = counts.map(([, n, unit]) => Number(n) * (unit === 'KiB' ? 1024 : 1));
  assert.ok(bytes.every((b, i) => i === 0 || b >= bytes[i - 1]) && bytes.at(-1) > bytes[0], `growing: ${shown.join(' | ')}`);
  assert.match(await page.locator('[data-testid=conn-status]').textContent(), /Connected: simulated device/);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a Connect clicked before the app is ready can be cancelled: the focus goes to Cancel, and the app does not connect', async () => {
  const { page, release, context } = await firstScreenOnly(server.url);
  await page.getByRole('button', { name: 'Connect' }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
  assert.match(await page.locator('[data-testid=announce]').textContent(), /Connecting as soon as the updater has loaded/);
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Connect');
  assert.equal(await page.locator('.first-load').count(), 0);
  release();
  await page.waitForSelector('html[data-app]');
  await page.waitForTimeout(500);
  assert.equal(await page.locator('[data-testid=conn-status]').textContent(), 'Not connected');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Connect', 'the focus stays on Connect, in the app');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the app cannot be loaded (the line dropped): the first screen says so, and Connect tries again', async () => {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  let fail = true;
  await page.route(/\/fota-web-[0-9a-f]{16}\.js$/, (route) => (fail ? route.abort('internetdisconnected') : route.continue()));
  await page.goto(server.url);
  await page.waitForSelector('html[data-ready]');
  const note = page.locator('.first-load');
  await note.waitFor();
  assert.match(await note.textContent(), /The updater could not be loaded \(.+\)\. Check the network, then click Connect again\./);
  fail = false;
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 30000 });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a Connect clicked before the app is ready: a bridge address without ws://, and a Web Serial port chosen in the click', async () => {
  const sim = await startSimServer(['--layout', 'bytecode']);
  try {
    const ws = await firstScreenOnly(server.url);
    await ws.page.getByRole('radio', { name: /WebSocket/ }).check();
    await ws.page.locator('#ws-url').fill(sim.tokenUrl.replace(/^ws:\/\//, ''));
    await ws.page.locator('#ws-url').press('Enter');
    assert.ok(await onFirstScreen(ws.page));
    ws.release();
    await ws.page.locator('[data-testid=record-ok]').waitFor({ timeout: 30000 });
    assert.equal(await ws.page.locator('#ws-url').count(), 0, 'connected: the form is gone');
    assert.deepEqual(ws.page.errors, []);
    await ws.context.close();
  } finally {
    sim.stop();
  }
  const device = await startSimServer(['--layout', 'bytecode']);
  try {
    // The real chooser opens only inside a user's click: recorded at each call.
    const watchChooser = () => {
      const request = navigator.serial.requestPort.bind(navigator.serial);
      window.__chooser = [];
      navigator.serial.requestPort = (o) => { window.__chooser.push(navigator.userActivation.isActive); return request(o); };
    };
    const init = { script: `(${installFakeSerial})(${JSON.stringify({ wsUrl: device.url })}); (${watchChooser})();` };
    const serial = await firstScreenOnly(server.url, { init });
    await serial.page.getByRole('radio', { name: /USB serial \(Web Serial\)/ }).check();
    await serial.page.getByRole('button', { name: 'Connect' }).click();
    assert.ok(await onFirstScreen(serial.page));
    assert.deepEqual(await serial.page.evaluate(() => window.__chooser), [true], 'the chooser opened once, in the click');
    assert.equal(await serial.page.evaluate(() => window.__fakeSerial.opens.length), 0, 'not opened before the app is there');
    serial.release();
    await serial.page.locator('[data-testid=record-ok]').waitFor({ timeout: 30000 });
    assert.match(await serial.page.locator('[data-testid=conn-status]').textContent(), /Connected: serial port/);
    assert.deepEqual(await serial.page.evaluate(() => window.__chooser), [true], 'the app used the chosen port: no second chooser');
    assert.deepEqual(serial.page.errors, []);
    await serial.context.close();

    // The chooser dismissed: the app says so when it takes over, as after its own click.
    const dismissed = await firstScreenOnly(server.url, { init });
    await dismissed.page.evaluate(() => { window.__fakeSerial.dismiss = true; });
    await dismissed.page.getByRole('radio', { name: /USB serial \(Web Serial\)/ }).check();
    await dismissed.page.getByRole('button', { name: 'Connect' }).click();
    dismissed.release();
    await dismissed.page.locator('.problem-message', { hasText: 'No port was chosen.' }).waitFor({ timeout: 30000 });
    assert.equal(await dismissed.page.getByRole('button', { name: 'Connect' }).isEnabled(), true);
    await dismissed.context.close();
  } finally {
    device.stop();
  }
});

test('offline: after one visit the app loads and updates the in-page simulated device with no network', async () => {
  const page = await openApp(browser, server.url);
  // The service worker takes over and keeps the page's files.
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20000 });
  const kept = await page.evaluate(async () => (await (await caches.open('fota-web-v1')).keys()).map((r) => new URL(r.url).pathname));
  console.log(`offline copy: ${kept.join(' ')}`);
  assert.ok(kept.some((p) => /^\/fota-web-[0-9a-f]{16}_bg\.wasm$/.test(p)), 'the WebAssembly is kept');
  // Kept before it was ever used: the simulated device and the encoder work offline.
  assert.ok(kept.some((p) => /^\/fota-web-extras-[0-9a-f]{16}_bg\.wasm$/.test(p)), 'the module loaded when needed is kept');
  assert.ok(kept.some((p) => /^\/fota-web-extras-[0-9a-f]{16}\.js$/.test(p)), 'its glue is kept');
  assert.ok(kept.some((p) => /^\/encoder-worker-[0-9a-f]{16}\.js$/.test(p)), 'the encoder\'s worker is kept');
  await page.context().setOffline(true);
  await page.reload();
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  assert.equal(await page.evaluate(() => navigator.onLine), false);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  // The simulated device decodes LZMA: the image went compressed, made in the worker.
  const encodes = await page.evaluate(() => fotaExtras.encodes);
  assert.ok(encodes.length > 0, 'the encoder ran (offline) in its worker');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('offline copy: a newer page brings its files in and drops the hashed files of earlier builds', async () => {
  const page = await openApp(browser, server.url);
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20000 });
  // What an earlier build left: its wasm and glue under hashed names this page does not
  // name, and this build's module dropped from the copy.
  const stale = ['/fota-web-0123456789abcdef_bg.wasm', '/fota-web-extras-0123456789abcdef.js', '/style-fedcba9876543210.css'];
  const extras = await page.evaluate(async (stale) => {
    const cache = await caches.open('fota-web-v1');
    for (const p of stale) await cache.put(p, new Response('from an earlier build'));
    const wasm = (await cache.keys()).map((r) => new URL(r.url).pathname).find((p) => /^\/fota-web-extras-[0-9a-f]{16}_bg\.wasm$/.test(p));
    await cache.delete(wasm);
    return wasm;
  }, stale);
  assert.ok(extras, 'the module loaded when needed was kept');
  await page.reload();
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  // The service worker refreshes its copy after handing over the page.
  const kept = await page.waitForFunction(async ({ stale, extras }) => {
    const paths = (await (await caches.open('fota-web-v1')).keys()).map((r) => new URL(r.url).pathname);
    return !stale.some((p) => paths.includes(p)) && paths.includes(extras) ? paths : null;
  }, { stale, extras }, { timeout: 20000, polling: 200 }).then((h) => h.jsonValue());
  console.log(`offline copy after a newer page: ${kept.join(' ')}`);
  assert.ok(kept.some((p) => /^\/fota-web-[0-9a-f]{16}_bg\.wasm$/.test(p)), 'the current WebAssembly stays');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

/** The bytes of an Intel HEX file's data records, from its lowest address on. */
function hexBytes(text) {
  const parts = [];
  let upper = 0;
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith(':')) continue;
    const b = Buffer.from(line.slice(1), 'hex');
    const [len, hi, lo, type] = b;
    if (type === 0) parts.push([upper + (hi << 8 | lo), b.subarray(4, 4 + len)]);
    else if (type === 4) upper = b.readUInt16BE(4) * 65536;
    else if (type === 2) upper = b.readUInt16BE(4) * 16;
  }
  parts.sort((a, b) => a[0] - b[0]);
  const start = parts[0][0];
  const out = Buffer.alloc(parts.at(-1)[0] + parts.at(-1)[1].length - start, 0xff);
  for (const [at, data] of parts) data.copy(out, at - start);
  return out;
}

test('the encoder runs in its worker: a 240 KiB firmware image encoded while the page keeps drawing', async (t) => {
  const firmware = '/usr/share/firmware-microbit-micropython/firmware.hex';
  if (!fs.existsSync(firmware)) return t.skip(`${firmware} is not installed (.ci/tools.sh installs it)`);
  const image = hexBytes(fs.readFileSync(firmware, 'utf8')).subarray(0, 240 * 1024);
  const page = await openApp(browser, server.url);
  const r = await page.evaluate(async (b64) => {
    const image = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bytes = image.byteLength;
    // The longest time between two frames while the encoder works.
    let done = false;
    let frames = 0;
    let longest = 0;
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      frames += 1;
      if (!done) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    const t0 = performance.now();
    const out = await fotaExtras.encode(null, image);
    const total = performance.now() - t0;
    done = true;
    const head = String.fromCharCode(out[0], out[1]);
    return { bytes, out: out.byteLength, head, total, worker: fotaExtras.encodes.at(-1).ms, frames, longest };
  }, image.toString('base64'));
  console.log(`encoder (LZMA, in its worker): ${r.bytes} bytes of micro:bit MicroPython into ${r.out} in ${(r.worker / 1000).toFixed(2)} s (${(r.total / 1000).toFixed(2)} s with loading the module and handing the bytes over); the page drew ${r.frames} frames meanwhile, at most ${r.longest.toFixed(0)} ms apart`);
  assert.equal(r.head, 'FZ', 'a compressed stream (docs/CODECS.md)');
  assert.ok(r.out < r.bytes, 'smaller than the image');
  assert.ok(r.frames > 1, 'the page kept drawing while the encoder worked');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('installable: the app manifest loads under the page policy and Chromium finds the app installable', async (t) => {
  // A browser profile of its own: Chromium never offers to install from an incognito
  // context, which is what a plain new context is.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'fota-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); });
  const page = context.pages()[0] ?? await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  await page.goto(server.url);
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  const cdp = await page.context().newCDPSession(page);
  const manifest = await cdp.send('Page.getAppManifest');
  assert.match(manifest.url, /\/app\.webmanifest$/);
  assert.deepEqual(manifest.errors, [], JSON.stringify(manifest.errors));
  const parsed = JSON.parse(manifest.data);
  assert.equal(parsed.name, 'FOTA web updater');
  assert.equal(parsed.display, 'standalone');
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, [], JSON.stringify(installabilityErrors));
  const violations = await page.evaluate(() => window.__violations ?? []);
  assert.deepEqual(violations, []);
  assert.deepEqual(page.errors, []);
});
