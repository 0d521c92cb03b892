// The whole guided update on the simulated device in the page: a healthy image ends
// accepted, a faulty one reverted. Also measures the first usable screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launch, openApp, shot } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

/** From the record stage: load a sample, go through image and slot, start, wait for the outcome. */
export async function flashSample(page, sample, name) {
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: sample }).click();
  await page.locator('[data-testid=image-bytecode] .md5').waitFor();
  await shot(page, `${name}-image`);
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await shot(page, `${name}-slot`);
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=running]').waitFor();
}

test('first usable screen', async () => {
  const page = await openApp(browser, server.url);
  const t = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const ready = performance.getEntriesByName('fota-ready')[0];
    return { ready: ready.startTime, dcl: nav.domContentLoadedEventEnd };
  });
  console.log(`first usable screen: ${t.ready.toFixed(0)} ms after navigation start (DOMContentLoaded ${t.dcl.toFixed(0)} ms)`);
  assert.ok(t.ready > 0 && t.ready < 10000);
  await page.getByRole('button', { name: 'Connect' }).waitFor();
  assert.ok(await page.getByRole('radio', { name: /Simulated device/ }).isChecked(), 'the simulated device is the default');
  await shot(page, '01-first-screen');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('simulated device: healthy image is accepted, faulty image is reverted', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  // The live record: nine fields, and the flash map.
  assert.equal(await page.locator('[data-testid=record] tbody tr').count(), 9);
  await page.locator('[data-testid=flash-map] .seg.bc').first().waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=conn-status]').textContent.includes('921600'));
  // The erase times the device declares, its block erases (Info tag 10) included.
  const erase = page.locator('dl.facts > div', { has: page.locator('dt', { hasText: /^Erase$/ }) });
  assert.equal(await erase.locator('dd').textContent(), 'a sector in 45 ms at worst; a 32 KiB block in 120 ms, a 64 KiB block in 150 ms');
  await shot(page, '02-record');

  await flashSample(page, 'Healthy blink v2', '03-healthy');
  await page.locator('[data-testid=progress-stats]').waitFor({ timeout: 20000 });
  await shot(page, '04-healthy-stream');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=outcome] .describe').textContent(), /running and has confirmed itself/);
  await shot(page, '05-healthy-accepted');

  await page.getByRole('button', { name: 'Update again' }).click();
  await page.getByRole('button', { name: 'Back' }).click();
  await flashSample(page, 'Faulty blink v3', '06-faulty');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'reverted');
  assert.match(await page.locator('[data-testid=outcome] .describe').textContent(), /went back to the previous firmware/);
  // It says why, in the device's own words, and does not offer the same image again.
  assert.match(await page.locator('[data-testid=revert-why]').textContent(), /self-test failed, hanging/);
  assert.equal(await page.getByRole('button', { name: 'Update again' }).count(), 0);
  await shot(page, '07-faulty-reverted');
  // The log, downloaded as text: device output and protocol events.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download .txt' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'fota-log.txt');
  const log = fs.readFileSync(await download.path(), 'utf8');
  assert.match(log, /MD5 [0-9a-f]{32} matches/);
  assert.match(log, /device +app: self-test failed, hanging/);
  assert.match(log, /reverted to the last working configuration/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('simulated device, VM + bytecode layout: a new VM and bytecode together are accepted', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('radio', { name: /^VM \+ bytecode/ }).check();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('[data-testid=flash-map] .seg-card.vm').count(), 2);
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'VM zvm 2.0' }).click();
  await page.locator('[data-testid=image-vm] .md5').waitFor();
  assert.match(await page.locator('[data-testid=image-vm]').textContent(), /VM slot 1 at/);
  await shot(page, '08-vm-images');
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=outcome]').textContent(), /bytecode slot 1 with VM slot 1/);
  await shot(page, '09-vm-accepted');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('simulated device: cancel mid-stream keeps the running firmware, and trying again resumes', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await flashSample(page, 'Healthy blink v2', '30-cancel');
  await page.waitForFunction(() => {
    const bar = document.querySelector('[role=progressbar][aria-valuenow]');
    return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 30;
  }, null, { timeout: 30000, polling: 20 });
  // The progress bar speaks bytes, speed and time left.
  assert.match(await page.locator('[role=progressbar][aria-valuenow]').getAttribute('aria-valuetext'), /KiB of 32 KiB, .*\/s/);
  // Leaving the page during the update: the browser asks first (the test says stay).
  const asked = new Promise((resolve) => page.once('dialog', async (d) => { resolve(d.type()); await d.dismiss(); }));
  await page.close({ runBeforeUnload: true });
  assert.equal(await asked, 'beforeunload');
  assert.ok(!page.isClosed());
  await page.getByRole('button', { name: 'Cancel' }).click();
  // A cancel is the user's own choice: no red error, and the stepper marks only the
  // stages that ran (erase & stream cancelled; checksum and attempt never ran).
  await page.locator('[data-testid=outcome][data-outcome=cancelled]').waitFor({ timeout: 15000 });
  assert.match(await page.locator('[data-testid=cancelled]').textContent(), /You cancelled the update during “Erase & stream”\..*Nothing was switched: the device still runs its current firmware/s);
  assert.equal(await page.locator('.problem, [role=alert]').count(), 0, 'a cancel is not an error');
  const marks = await page.locator('.stepper li').evaluateAll((els) => els.map((e) => e.dataset.mark));
  assert.deepEqual(marks, ['done', 'done', 'done', 'done', 'cancelled', 'todo', 'todo', 'current']);
  await shot(page, '31-cancelled');
  await page.getByRole('button', { name: 'Try again (resumes)' }).click();
  await page.locator('[data-testid=outcome]:not([data-outcome=cancelled])').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=skipped]').textContent(), /\d+(\.\d)? KiB were already on the device/);
  assert.deepEqual(page.errors, []);
  // With no update running, the page leaves without asking.
  let askedAgain = false;
  page.once('dialog', async (d) => { askedAgain = true; await d.dismiss(); });
  await page.close({ runBeforeUnload: true });
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!askedAgain && page.isClosed(), 'no question when idle');
  await page.context().close();
});

test('simulated device: the simulated cable pulled mid-stream, then the device (kept) resumes', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await flashSample(page, 'Healthy blink v2', '32-sim-unplug');
  await page.waitForFunction(() => {
    const bar = document.querySelector('[role=progressbar][aria-valuenow]');
    return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 30;
  }, null, { timeout: 30000, polling: 20 });
  await page.getByRole('button', { name: 'Pull the simulated cable' }).click();
  await page.locator('.problem', { hasText: 'The update stopped' }).waitFor({ timeout: 15000 });
  assert.match(await page.locator('.problem').textContent(), /simulated cable is unplugged/);
  // The device keeps its flash between connections, like a board on the desk.
  await page.getByText('keeps what was flashed to it').waitFor();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.getByRole('button', { name: 'Resume the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=skipped]').textContent(), /\d+(\.\d)? KiB were already on the device/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
