// A manifest and its images on another origin than the app (docs/MANIFEST.md, "Where the
// manifest may live"): the app served by `fota serve --connect-src` that origin, which
// answers with CORS headers, completes an update; a site without CORS is refused with a
// message that names both remedies, and "Fetch again" loads it once the site allows it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { dist, serve, launch, openApp, shot, freePort } from '../helpers.js';

let server, browser, firmware;
/** The firmware site: dist/example's files; CORS for the app's origin except under /nocors/ until allowed. */
const site = { appOrigin: null, allowNoCors: false, origins: [] };

before(async () => {
  const port = await freePort();
  const files = path.join(dist, 'example');
  firmware = http.createServer((req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    site.origins.push(req.headers.origin || '');
    const nocors = url.pathname.startsWith('/nocors/');
    const name = path.basename(url.pathname);
    const file = path.join(files, name);
    if (!nocors || site.allowNoCors) res.setHeader('Access-Control-Allow-Origin', site.appOrigin);
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.setHeader('Content-Type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => firmware.listen(port, '127.0.0.1', r));
  site.url = `http://127.0.0.1:${port}`;
  server = await serve(dist, ['--connect-src', site.url]);
  site.appOrigin = server.origin;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await new Promise((r) => (firmware ? firmware.close(r) : r()));
});

test('a manifest on another origin with CORS: fetched, checked and installed', async () => {
  assert.notEqual(new URL(site.url).origin, server.origin, 'two origins');
  const page = await openApp(browser, `${server.url}?manifest=${encodeURIComponent(`${site.url}/firmware/manifest.json`)}`);
  await page.locator('[data-testid=manifest-name]').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('[data-testid=manifest-name]').textContent(), 'Blink 2.0.0');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.locator('[data-testid=manifest-ready]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Start the update' }).click();
  const outcome = page.locator('[data-testid=outcome]');
  await outcome.waitFor({ timeout: 60000 });
  assert.equal(await outcome.getAttribute('data-outcome'), 'accepted');
  assert.ok(site.origins.includes(server.origin), 'the browser asked as the app origin (CORS)');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('without CORS the manifest is refused, naming both remedies; Fetch again loads it once allowed', async () => {
  site.allowNoCors = false;
  const page = await openApp(browser, `${server.url}?manifest=${encodeURIComponent(`${site.url}/nocors/manifest.json`)}`);
  const offer = page.locator('[data-testid=manifest]');
  const problem = offer.locator('.problem');
  await problem.waitFor({ timeout: 20000 });
  const text = await problem.textContent();
  assert.match(text, /could not be fetched/);
  assert.match(text, /connect-src/);
  assert.match(text, /Access-Control-Allow-Origin/);
  await shot(page, '130-manifest-no-cors');
  // The browser's console names the CORS refusal; the page itself raised nothing.
  page.errors = page.errors.filter((e) => !/CORS|Failed to load resource|Access-Control-Allow-Origin/.test(e));
  site.allowNoCors = true;
  await offer.getByRole('button', { name: 'Fetch again' }).click();
  await offer.locator('[data-testid=manifest-name]').waitFor({ timeout: 20000 });
  assert.equal(await offer.locator('[data-testid=manifest-name]').textContent(), 'Blink 2.0.0');
  assert.equal(await offer.locator('.problem').count(), 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
