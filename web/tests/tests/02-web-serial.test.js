// The Web Serial code path end to end: navigator.serial is replaced by a spec-shaped fake
// port whose bytes travel over a WebSocket to a real simulated device (`fota sim --ws`).
// Also: the chooser dismissed, the port busy, and a cable pulled in the middle of the
// stream, after which flashing again resumes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, shot, startSimServer } from '../helpers.js';
import { installFakeSerial } from '../fake-serial.js';

let server, browser, sim;
before(async () => {
  server = await serve();
  browser = await launch();
  sim = await startSimServer(['--layout', 'bytecode']);
});
after(async () => { await browser?.close(); await server?.close(); sim?.stop(); });

async function openWithFake(device = sim) {
  const page = await openApp(browser, server.url, { init: { script: installFakeSerial, arg: { wsUrl: device.url } } });
  await page.getByRole('radio', { name: /USB serial \(Web Serial\)/ }).check();
  return page;
}

async function flash(page, sample) {
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: sample }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=running]').waitFor();
}

test('web serial: clear messages when no port is chosen and when the port is busy', async () => {
  const page = await openWithFake();
  await page.evaluate(() => { window.__fakeSerial.dismiss = true; });
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('.problem-message', { hasText: 'No port was chosen.' }).waitFor();
  assert.match(await page.locator('.problem').textContent(), /pick your device in the browser's list/);
  await shot(page, '10-serial-no-port');
  await page.evaluate(() => { window.__fakeSerial.dismiss = false; window.__fakeSerial.busy = true; });
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('.problem-message', { hasText: /The port could not be opened: it is busy/ }).waitFor();
  assert.match(await page.locator('.problem').textContent(), /Another program or browser tab has it open/);
  await shot(page, '11-serial-busy');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('web serial: healthy image accepted, faulty image reverted, through fota sim --ws', async () => {
  const page = await openWithFake();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.waitForFunction(() => document.querySelector('[data-testid=conn-status]').textContent.includes('921600'), null, { timeout: 10000 });
  const hooks = await page.evaluate(() => window.__fakeSerial);
  assert.ok(hooks.opens[0].bufferSize >= 65536, `bufferSize ${hooks.opens[0].bufferSize}`);
  assert.equal(hooks.opens[0].baudRate, 115200);
  assert.equal(hooks.opens.at(-1).baudRate, 921600, 'reopened at the negotiated rate');
  assert.equal(hooks.lockedCloses, 0, 'locks are released before close()');
  await shot(page, '12-serial-record');

  await flash(page, 'Healthy blink v2');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  await shot(page, '13-serial-accepted');

  await page.getByRole('button', { name: 'Update again' }).click();
  await page.getByRole('button', { name: 'Back' }).click();
  await flash(page, 'Faulty blink v3');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'reverted');
  await shot(page, '14-serial-reverted');

  await page.getByRole('button', { name: 'Update again' }).click();
  await page.getByRole('button', { name: 'Back' }).click();
  await page.getByRole('button', { name: 'Disconnect from the device' }).click();
  await page.locator('[data-testid=conn-status]', { hasText: 'Not connected' }).waitFor();
  assert.equal((await page.evaluate(() => window.__fakeSerial)).lockedCloses, 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('web serial: cable pulled mid-stream, then flashing again resumes', async (t) => {
  // A device of its own, fresh at 115200 baud, so the stream lasts about 3 s.
  const device = await startSimServer(['--layout', 'bytecode']);
  t.after(() => device.stop());
  const page = await openWithFake(device);
  // Stay at 115200 baud so the stream lasts long enough to pull the cable in the middle.
  await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await flash(page, 'Healthy blink v2');
  await page.waitForFunction(() => {
    const bar = document.querySelector('[role=progressbar][aria-valuenow]');
    return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 40;
  }, null, { timeout: 30000, polling: 20 });
  await shot(page, '15-serial-before-unplug');
  await page.evaluate(() => window.__fakeSerial.unplug());
  await page.locator('.problem', { hasText: 'The update stopped' }).waitFor({ timeout: 15000 });
  const problem = await page.locator('.problem').textContent();
  assert.match(problem, /connection to the device was lost/);
  assert.match(problem, /Flashing the same image again resumes/);
  await shot(page, '16-serial-lost');

  await page.getByRole('button', { name: 'Connect' }).click();
  await page.getByRole('button', { name: 'Resume the update' }).click();
  await page.locator('[data-testid=resumed]').waitFor({ timeout: 30000 });
  const resumed = await page.locator('[data-testid=resumed]').textContent();
  const already = Number(/(\d+) of \d+ bytes are already on the device/.exec(resumed)[1]);
  assert.ok(already > 0, resumed);
  console.log(`resumed: ${resumed}`);
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=skipped]').textContent(), new RegExp(`${already} bytes were already on the device`));
  await shot(page, '17-serial-resumed-accepted');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
