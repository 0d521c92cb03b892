// The first load: the bytes on the wire (compressed by `fota serve` from the build's .br
// files) and the time to a usable screen on a phone profile (slow 4G, 4x slower CPU), with
// the loading screen counting. Then offline: after one visit the service worker keeps
// the app, and a whole update on the in-page simulated device works with no network.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve, launch, openApp, CHROMIUM } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

test('first load: bytes on the wire and time to a usable screen on slow 4G with a 4x slower CPU', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  // Chrome DevTools' "Slow 4G" preset, and its 4x CPU slowdown (a mid-range phone).
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 562.5, downloadThroughput: (1.6 * 1024 * 1024) / 8 * 0.9, uploadThroughput: (750 * 1024) / 8 * 0.9,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  const files = new Map();
  cdp.on('Network.responseReceived', (e) => files.set(e.requestId, { url: e.response.url, encoding: e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] || '' }));
  cdp.on('Network.loadingFinished', (e) => { const f = files.get(e.requestId); if (f) f.bytes = e.encodedDataLength; });
  // What the loading screen counted, as it changed.
  await page.addInitScript(() => {
    window.__counts = [];
    new MutationObserver(() => {
      const t = document.querySelector('.boot-count')?.textContent;
      if (t && window.__counts.at(-1) !== t) window.__counts.push(t);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(server.url, { waitUntil: 'commit' });
  await page.waitForSelector('html[data-ready]', { timeout: 120000 });
  const ready = await page.evaluate(() => performance.getEntriesByName('fota-ready')[0].startTime);
  const counts = await page.evaluate(() => window.__counts);
  const counted = counts.join(', ');
  assert.ok(counts.length > 0 && counts.every((c) => /^\d+ KiB/.test(c)), `the loading screen counts: ${counted}`);
  let total = 0;
  for (const f of files.values()) {
    if (!f.bytes) continue;
    total += f.bytes;
    console.log(`  ${new URL(f.url).pathname}: ${f.bytes} bytes on the wire${f.encoding ? ` (${f.encoding})` : ''}`);
  }
  console.log(`first load: ${total} bytes (${(total / 1024).toFixed(0)} KiB) on the wire; usable screen after ${(ready / 1000).toFixed(1)} s on slow 4G with a 4x slower CPU; loading screen counted ${counts[0]} … ${counts.at(-1)} (${counts.length} updates)`);
  const wasm = [...files.values()].find((f) => f.url.endsWith('.wasm'));
  assert.equal(wasm.encoding, 'br', 'the WebAssembly travels compressed');
  assert.ok(total > 0);
  await context.close();
});

test('offline: after one visit the app loads and updates the in-page simulated device with no network', async () => {
  const page = await openApp(browser, server.url);
  // The service worker takes over and keeps the page's files.
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20000 });
  const kept = await page.evaluate(async () => (await (await caches.open('fota-web-v1')).keys()).map((r) => new URL(r.url).pathname));
  console.log(`offline copy: ${kept.join(' ')}`);
  assert.ok(kept.some((p) => p.endsWith('.wasm')), 'the WebAssembly is kept');
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
