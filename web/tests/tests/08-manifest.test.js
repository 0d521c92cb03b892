// Firmware manifests (docs/MANIFEST.md): `?manifest=` loads the firmware a site offers,
// the images for the connected device's layout are checked against the manifest's sizes
// and SHA-256 before anything is written, and the install button of the example vendor
// page leads to a completed update.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dist, serve, launch, openApp, shot, docShot, startSimServer, overflow, axeViolations } from '../helpers.js';

let server, browser, tmp;
before(async () => {
  // The built app, plus manifests that lie about their images (served next to the
  // example's own), under the same policy as .ci/serve.
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fota-manifest-'));
  fs.cpSync(dist, tmp, { recursive: true });
  const good = JSON.parse(fs.readFileSync(path.join(tmp, 'example', 'manifest.json'), 'utf8'));
  const bad = structuredClone(good);
  for (const e of bad.images) if (e.kind === 'bytecode') e.sha256 = e.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  fs.writeFileSync(path.join(tmp, 'example', 'bad-hash.json'), JSON.stringify(bad));
  const short = structuredClone(good);
  for (const e of short.images) if (e.kind === 'bytecode') e.size += 1;
  fs.writeFileSync(path.join(tmp, 'example', 'bad-size.json'), JSON.stringify(short));
  fs.writeFileSync(path.join(tmp, 'example', 'not-a-manifest.json'), JSON.stringify({ format: 1, name: 'x', version: '1', images: [{ layout: 'vm', kind: 'vm', url: 'a.bin', size: 1, sha256: 'abc' }] }));
  server = await serve(tmp);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The record panel's nine fields, as shown. */
async function recordText(page) {
  return page.locator('[data-testid=record] tbody').textContent();
}

test('?manifest= offers the firmware, fetches the image for the device and updates it', async () => {
  const page = await openApp(browser, `${server.url}?manifest=example/manifest.json`);
  const offer = page.locator('[data-testid=manifest]');
  await offer.locator('[data-testid=manifest-name]').waitFor();
  assert.equal(await offer.locator('[data-testid=manifest-name]').textContent(), 'Blink 2.0.0');
  assert.match(await offer.textContent(), /Bytecode image for the bytecode layout: blink-v2\.bin, 32 KiB/);
  assert.match(await offer.textContent(), /VM image for the vm layout: zvm-2\.0\.bin/);
  await shot(page, '100-manifest-offer');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  // Nothing to decide in the record: it goes on by itself to the slot, where the user
  // confirms the start (the keyboard focus is on it).
  const ready = page.locator('[data-testid=manifest-ready]');
  await ready.waitFor({ timeout: 20000 });
  assert.match(await ready.textContent(), /Blink 2\.0\.0: the record check passed and each image matches its manifest/);
  assert.match(await page.locator('table.plan').textContent(), /blink-v2\.bin, 32 KiB/);
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Start the update');
  await shot(page, '100-manifest-ready');
  await docShot(page, 'manifest-ready', { fullPage: false });
  // The image step shows where the image comes from and what was checked.
  await page.getByRole('button', { name: 'Back' }).click();
  const card = page.locator('[data-testid=image-bytecode]');
  assert.match(await card.textContent(), /from Blink 2\.0\.0 \(manifest\): size and SHA-256 3cb7cfcc[0-9a-f]+ match/);
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  // Connected again: the device runs it already (its MD5 of the running slot), and the
  // page says so instead of flashing it again.
  await page.getByRole('button', { name: 'Disconnect from the device' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=conn-status]')?.textContent === 'Not connected');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  const same = page.locator('[data-testid=installed-same]');
  await same.waitFor({ timeout: 20000 });
  assert.match(await same.textContent(), /Blink 2\.0\.0 is already installed/);
  assert.equal(await page.locator('[data-testid=manifest-ready]').count(), 0);
  await shot(page, '102-manifest-installed-already');
  await page.getByRole('button', { name: 'Install again anyway' }).click();
  await page.locator('[data-testid=manifest-ready]').waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

for (const [file, why] of [['bad-hash.json', /does not match the manifest: its SHA-256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}: refused/],
  ['bad-size.json', /blink-v2\.bin is 32 KiB \(32848 bytes\), but the manifest says 32 KiB \(32849 bytes\): refused/]]) {
  test(`a manifest whose image does not match (${file}) is refused before anything is written`, async (t) => {
    // A device whose flash is a file: byte for byte what was written, or not.
    const state = path.join(tmp, `flash-${file}.bin`);
    const sim = await startSimServer(['--layout', 'bytecode', '--state', state]);
    t.after(() => sim.stop());
    const page = await openApp(browser, `${server.url}?manifest=example/${file}`);
    await page.locator('[data-testid=manifest-name]').waitFor();
    await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
    await page.getByLabel('Bridge address').fill(sim.url);
    const flashBefore = fs.readFileSync(state);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
    const recordBefore = await recordText(page);
    const refusal = page.getByRole('alert').filter({ hasText: 'The firmware from the manifest was refused' });
    await refusal.waitFor({ timeout: 20000 });
    const text = await refusal.textContent();
    assert.match(text, why);
    assert.match(text, /What to do: Nothing was written to the device\. Fetch it again/);
    await shot(page, `101-manifest-refused-${file}`);
    if (file === 'bad-hash.json') await docShot(page, 'manifest-refused', { fullPage: false });
    // Nothing loaded: the image step has no image, so there is nothing to start.
    await page.getByRole('button', { name: 'Continue: choose the image' }).click();
    assert.equal(await page.locator('[data-testid=image-bytecode] .md5').count(), 0);
    assert.ok(await page.getByRole('button', { name: 'Continue: check the slot' }).isDisabled());
    // And the device: its record as it was, its flash byte for byte as it was.
    await page.waitForTimeout(2000); // a record refresh or two
    assert.equal(await recordText(page), recordBefore);
    assert.ok(fs.readFileSync(state).equals(flashBefore), 'the flash did not change');
    assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), []);
    await page.context().close();
  });
}

test('an invalid manifest says which field, and the app still works with a file', async () => {
  const page = await openApp(browser, `${server.url}?manifest=example/not-a-manifest.json`);
  const problem = page.getByRole('alert').filter({ hasText: 'The firmware manifest cannot be used' });
  await problem.waitFor();
  assert.match(await problem.textContent(), /image 1 \(a\.bin\): sha256 must be 64 hex digits/);
  assert.match(await problem.textContent(), /docs\/MANIFEST\.md/);
  const missing = await openApp(browser, `${server.url}?manifest=example/nothing-here.json`);
  const p2 = missing.getByRole('alert').filter({ hasText: 'The firmware manifest cannot be used' });
  await p2.waitFor();
  assert.match(await p2.textContent(), /could not be fetched: HTTP 404/);
  await page.context().close();
  await missing.context().close();
});

test('the example vendor page: its install button opens the app with the manifest, and the update completes', async () => {
  const page = await openApp(browser, server.url); // the app, for its service worker first
  await page.goto(`${server.url}example/`);
  const button = page.locator('fota-install-button button');
  await page.waitForFunction(() => document.querySelector('fota-install-button button')?.textContent === 'Install Blink 2.0.0');
  await docShot(page, 'install-button', { upTo: 'main' });
  await button.click();
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  assert.equal(new URL(page.url()).searchParams.get('manifest'), `${server.url}example/manifest.json`);
  await page.locator('[data-testid=manifest-name]').waitFor();
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.locator('[data-testid=manifest-ready]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.deepEqual(page.errors, []);

  // The same button with a manifest that lies about its image: refused, nothing loaded.
  await page.goto(`${server.url}example/`);
  await page.locator('fota-install-button button').waitFor();
  await page.evaluate(() => document.querySelector('fota-install-button').setAttribute('manifest', 'bad-hash.json'));
  await page.locator('fota-install-button button').click();
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  const refusal = page.getByRole('alert').filter({ hasText: 'The firmware from the manifest was refused' });
  await refusal.waitFor({ timeout: 20000 });
  assert.match(await refusal.textContent(), /does not match the manifest/);
  assert.equal(await page.locator('[data-testid=manifest-ready]').count(), 0);
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  assert.equal(await page.locator('[data-testid=image-bytecode] .md5').count(), 0);
  await page.context().close();
});

test('on a 360 px phone: the offer, the refusal and the one confirmation fit the screen', async () => {
  const phone = { viewport: { width: 360, height: 740 }, mobile: true };
  const page = await openApp(browser, `${server.url}?manifest=example/manifest.json`, phone);
  await page.locator('[data-testid=manifest-name]').waitFor();
  assert.deepEqual(await overflow(page), { excess: 0, innerWidth: 360, culprits: [] });
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.locator('[data-testid=manifest-ready]').waitFor({ timeout: 20000 });
  assert.deepEqual(await overflow(page), { excess: 0, innerWidth: 360, culprits: [] });
  await shot(page, '103-manifest-ready-phone');
  const bad = await openApp(browser, `${server.url}?manifest=example/bad-hash.json`, phone);
  await bad.getByRole('button', { name: 'Connect', exact: true }).click();
  await bad.getByRole('alert').filter({ hasText: 'The firmware from the manifest was refused' }).waitFor({ timeout: 20000 });
  assert.deepEqual(await overflow(bad), { excess: 0, innerWidth: 360, culprits: [] });
  await shot(bad, '104-manifest-refused-phone');
  assert.deepEqual(page.errors, []);
  await page.context().close();
  await bad.context().close();
});

for (const colorScheme of ['light', 'dark']) {
  test(`axe-core: the manifest's offer, refusal and slot step have no serious violation (${colorScheme})`, async () => {
    const page = await openApp(browser, `${server.url}?manifest=example/manifest.json`, { colorScheme, bypassCSP: true });
    await page.locator('[data-testid=manifest-name]').waitFor();
    assert.deepEqual(await axeViolations(page), []);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('[data-testid=manifest-ready]').waitFor({ timeout: 20000 });
    assert.deepEqual(await axeViolations(page), []);
    const bad = await openApp(browser, `${server.url}?manifest=example/bad-hash.json`, { colorScheme, bypassCSP: true });
    await bad.getByRole('button', { name: 'Connect', exact: true }).click();
    await bad.getByRole('alert').filter({ hasText: 'The firmware from the manifest was refused' }).waitFor({ timeout: 20000 });
    assert.deepEqual(await axeViolations(bad), []);
    await page.context().close();
    await bad.context().close();
  });
}

test('axe-core: the example vendor page has no serious violation', async () => {
  const page = await openApp(browser, server.url, { bypassCSP: true });
  await page.goto(`${server.url}example/`);
  await page.waitForFunction(() => document.querySelector('fota-install-button button')?.textContent === 'Install Blink 2.0.0');
  assert.deepEqual(await axeViolations(page), []);
  await page.context().close();
});
