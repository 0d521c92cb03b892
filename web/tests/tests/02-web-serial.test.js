// The Web Serial code path end to end: navigator.serial is replaced by a spec-shaped fake
// port whose bytes travel over a WebSocket to a real simulated device (`fota sim --ws`).
// Also: the chooser dismissed, the port busy, a cable pulled in the middle of the
// stream, after which flashing again resumes, and a device that re-enumerates when it
// restarts (a new SerialPort object, found again with getPorts()).
import fs from 'node:fs';
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

async function openWithFake(device = sim, options = {}) {
  const page = await openApp(browser, server.url, { init: { script: installFakeSerial, arg: { wsUrl: device.url, ...options } } });
  await page.getByRole('radio', { name: /USB serial \(Web Serial\)/ }).check();
  return page;
}

/**
 * From now on, the page remembers in window.__seen[key] the first moment `selector` shows
 * (its text and data-bytes), however briefly: a view the app shows for a few seconds can
 * be gone before a wait from here looks for it on a loaded machine. Returns a function
 * that waits for it (failing with what the page shows instead) and resolves to it.
 */
async function remember(page, key, selector) {
  await page.evaluate(({ key, selector }) => {
    const seen = (window.__seen ??= {});
    delete seen[key];
    const look = () => {
      const el = document.querySelector(selector);
      if (el) seen[key] = { text: el.textContent, bytes: el.getAttribute('data-bytes') };
      return !!el;
    };
    if (look()) return;
    const watch = new MutationObserver(() => { if (look()) watch.disconnect(); });
    watch.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  }, { key, selector });
  return async (timeout) => {
    try {
      await page.waitForFunction((key) => window.__seen[key], key, { timeout });
    } catch (e) {
      throw new Error(`${selector} never showed; the page shows: ${await showing(page)}\n${e.message}`);
    }
    return page.evaluate((key) => window.__seen[key], key);
  };
}

/** What the page shows now, for a failure's message: the step's heading, a problem, the log's end. */
function showing(page) {
  return page.evaluate(() => JSON.stringify({
    heading: document.querySelector('h2')?.textContent,
    problem: document.querySelector('.problem')?.textContent,
    outcome: document.querySelector('[data-testid=outcome]')?.getAttribute('data-outcome'),
    log: [...document.querySelectorAll('.log-lines .line')].slice(-8)
      .map((l) => [...l.children].map((c) => c.textContent.trim()).join(' ')),
  }));
}

async function flash(page, sample) {
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: sample }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  // Watched from before the click: the running view lasts as long as the update, which
  // may be over before a wait from here would first look.
  const running = await remember(page, 'running', '[data-testid=running]');
  await page.getByRole('button', { name: 'Start the update' }).click();
  await running(30000);
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

  // A revert offers another image, not the same faulty one again.
  await page.getByRole('button', { name: 'Choose another image' }).click();
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
  // The cable is pulled by the page itself, the moment its progress bar shows 40 % of the
  // image sent: from here, waiting for that and then pulling the cable took two round
  // trips, during which a loaded machine could let the stream end.
  await page.evaluate(() => {
    const watch = new MutationObserver(() => {
      const bar = document.querySelector('[role=progressbar][aria-valuenow]');
      const sent = bar && Number(bar.getAttribute('aria-valuenow'));
      if (bar?.getAttribute('aria-label') !== 'Sending' || !(sent >= 40)) return;
      watch.disconnect();
      window.__unplugged = { sent, written: window.__fakeSerial.written };
      window.__fakeSerial.unplug();
    });
    watch.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow', 'aria-label'] });
  });
  await flash(page, 'Healthy blink v2');
  await shot(page, '15-serial-before-unplug');
  try {
    await page.waitForFunction(() => window.__unplugged, null, { timeout: 30000 });
  } catch (e) {
    throw new Error(`the stream never showed 40 % sent; the page shows: ${await showing(page)}\n${e.message}`);
  }
  const unplugged = await page.evaluate(() => window.__unplugged);
  console.log(`cable pulled at ${unplugged.sent} % sent (${unplugged.written} bytes written to the port)`);
  // Mid-stream: the bar said Sending, and not yet all of it.
  assert.ok(unplugged.sent < 100, `pulled at ${unplugged.sent} %`);
  await page.locator('.problem', { hasText: 'The update stopped' }).waitFor({ timeout: 15000 });
  const problem = await page.locator('.problem').textContent();
  assert.match(problem, /connection to the device was lost/);
  assert.match(problem, /Flashing the same image again resumes/);
  await shot(page, '16-serial-lost');

  await page.getByRole('button', { name: 'Connect' }).click();
  // The resume's note shows while the update runs, which may end before a wait from here
  // would look: the page remembers it.
  const resumedNote = await remember(page, 'resumed', '[data-testid=resumed]');
  await page.getByRole('button', { name: 'Resume the update' }).click();
  const { text: resumed, bytes } = await resumedNote(30000);
  // Sizes read in KiB; the exact count rides along in data-bytes.
  assert.match(resumed, /[\d.]+ KiB of [\d.]+ KiB are already on the device/);
  const already = Number(bytes);
  assert.ok(already > 0, resumed);
  console.log(`resumed: ${resumed}`);
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  assert.match(await page.locator('[data-testid=skipped]').textContent(), /KiB were already on the device/);
  assert.equal(Number(await page.locator('[data-testid=skipped]').getAttribute('data-bytes')), already);
  await shot(page, '17-serial-resumed-accepted');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('web serial: the device re-enumerates when it restarts, the same port is found again with getPorts()', async (t) => {
  // A native-USB device: its reset kills the SerialPort object, and a new one with the
  // same USB ids appears 300 ms later. A device of its own, so the flash is known. The
  // new firmware confirms itself 2 s after boot, after the port is surely back, so its
  // log line can only reach the page through the new port.
  const device = await startSimServer(['--layout', 'bytecode', '--accept-after-ms', '2000']);
  t.after(() => device.stop());
  const page = await openWithFake(device, { reenumerateOnRestart: true, reenumerateDelayMs: 300 });
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.waitForFunction(() => document.querySelector('[data-testid=conn-status]').textContent.includes('921600'), null, { timeout: 10000 });
  let hooks = await page.evaluate(() => window.__fakeSerial);
  assert.deepEqual(hooks.reenumerations, [], 'no restart yet');
  const getPortsBefore = hooks.getPortsCalls;

  await flash(page, 'Healthy blink v2');
  // The outcome, or the problem that stopped the update (the port not found again).
  await page.locator('[data-testid=outcome], .problem').first().waitFor({ timeout: 60000 });
  if (await page.locator('.problem').count()) assert.fail(await page.locator('.problem').textContent());
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  await shot(page, '18-serial-reenumerated-accepted');

  hooks = await page.evaluate(() => window.__fakeSerial);
  console.log(`re-enumeration: ${JSON.stringify({ reenumerations: hooks.reenumerations, events: hooks.events, getPortsCalls: hooks.getPortsCalls, opens: hooks.opens.map((o) => `port ${o.port} at ${o.baudRate}`) })}`);
  // The port object the update started on died at the restart (after its Restarting
  // reply), and the one that replaced it was found with getPorts() and opened.
  assert.deepEqual(hooks.reenumerations, [{ port: 0, why: 'restart' }]);
  assert.deepEqual(hooks.events.map((e) => `${e.type} ${e.port}`), ['disconnect 0', 'connect 1']);
  assert.ok(hooks.getPortsCalls > getPortsBefore, `getPorts() called (${getPortsBefore} -> ${hooks.getPortsCalls})`);
  const reopened = hooks.opens.filter((o) => o.port === 1);
  assert.ok(reopened.length > 0, 'the new port object was opened');
  assert.equal(reopened[0].baudRate, 115200, 'the device came back at its base rate');
  assert.ok(reopened[0].bufferSize >= 65536, `bufferSize ${reopened[0].bufferSize}`);
  assert.equal(hooks.opens.at(-1).port, 1);
  assert.equal(hooks.opens.at(-1).baudRate, 921600, 'the rate raised again on the new port');
  assert.equal(hooks.lockedCloses, 0, 'locks are released before close()');
  assert.match(await page.locator('[data-testid=conn-status]').textContent(), /921600/);
  const live = await page.evaluate(async () => {
    const ports = await navigator.serial.getPorts();
    return ports.map((p) => ({ id: p.id, open: p._open, connected: p.connected, info: p.getInfo() }));
  });
  assert.deepEqual(live, [{ id: 1, open: true, connected: true, info: { usbVendorId: 0x1209, usbProductId: 0xf07a } }]);

  // The log: the restart, then the device answering through the new port, whose
  // output (the firmware confirming itself) only the new port object could carry.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download .txt' }).click(),
  ]);
  const log = fs.readFileSync(await download.path(), 'utf8');
  const restartAt = log.search(/step +Restart: Restarting the device into the new firmware/);
  assert.ok(restartAt >= 0, log);
  // After the restart: the device answered again (the outcome step), and its output came
  // through the new port object (the old one died before the firmware booted).
  assert.match(log.slice(restartAt), /step +Outcome: Waiting up to [\d.]+ s for the new firmware to confirm itself[^]*device +app: self-test passed, accept\(\)[^]*step +Outcome: The new firmware is running and has confirmed itself/);
  console.log(log.slice(log.lastIndexOf('\n', restartAt) + 1).trimEnd());

  // Still usable afterwards: the record, read through the new port, has the new firmware
  // confirmed.
  await page.getByRole('button', { name: 'Update again' }).click();
  await page.getByRole('button', { name: 'Back' }).click();
  await page.locator('[data-testid=record-ok]', { hasText: 'bytecode slot 1 with VM slot 0' }).waitFor({ timeout: 10000 });

  // Faulty firmware: the port dies at the restart, and again when the watchdog resets the
  // hung firmware (seen by its boot banner); the revert is still seen, on a third new port.
  await flash(page, 'Faulty blink v3');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'reverted');
  await shot(page, '19-serial-reenumerated-reverted');
  hooks = await page.evaluate(() => window.__fakeSerial);
  assert.deepEqual(hooks.reenumerations, [{ port: 0, why: 'restart' }, { port: 1, why: 'restart' }, { port: 2, why: 'boot' }]);
  assert.equal(hooks.opens.at(-1).port, 3);
  assert.equal(hooks.lockedCloses, 0);
  await page.getByRole('button', { name: 'Choose another image' }).click();
  await page.getByRole('button', { name: 'Back' }).click();
  await page.locator('[data-testid=record-ok]', { hasText: 'bytecode slot 1 with VM slot 0' }).waitFor({ timeout: 10000 });
  await page.getByRole('button', { name: 'Disconnect from the device' }).click();
  await page.locator('[data-testid=conn-status]', { hasText: 'Not connected' }).waitFor();
  assert.equal((await page.evaluate(() => window.__fakeSerial)).lockedCloses, 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
