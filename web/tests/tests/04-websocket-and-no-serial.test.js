// The WebSocket bridge path (to `fota sim --ws`, as to `fota bridge --ws`), the help for
// browsers without Web Serial, and the dark theme.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, shot, startSimServer, startBridge } from '../helpers.js';

let server, browser, sim;
before(async () => {
  server = await serve();
  browser = await launch();
  sim = await startSimServer(['--layout', 'vm']);
});
after(async () => { await browser?.close(); await server?.close(); sim?.stop(); });

test('websocket bridge: a healthy image is accepted', async () => {
  const page = await openApp(browser, server.url, { colorScheme: 'dark' });
  await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
  // The address as the simulator printed it, token and all: the form takes it.
  assert.match(sim.tokenUrl, /\/\?token=[0-9a-f]{32}$/);
  await page.getByLabel('Bridge address').fill(sim.tokenUrl);
  await shot(page, '40-websocket-connect-dark');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  const status = await page.locator('[data-testid=conn-status]').textContent();
  assert.match(status, /WebSocket ws:\/\/127\.0\.0\.1:\d+\/\?token=…/);
  assert.ok(!status.includes(sim.tokenUrl.split('token=')[1]), `the token stays off the screen: ${status}`);
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  await shot(page, '41-websocket-accepted-dark');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('websocket bridge: through fota bridge to a serial port, a healthy image is accepted', async (t) => {
  // The real bridge (origin check and all) in front of a simulated device on a
  // pseudo-terminal, as in front of /dev/ttyUSB0.
  const bridge = await startBridge(['--layout', 'bytecode']);
  t.after(() => bridge.stop());
  const page = await openApp(browser, server.url);
  await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
  await page.getByLabel('Bridge address').fill(bridge.url);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 90000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted', bridge.output());
  assert.match(bridge.output(), /client 127\.0\.0\.1:\d+ connected/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('websocket bridge: nothing listening gives a clear message', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
  await page.getByLabel('Bridge address').fill('ws://127.0.0.1:9');
  await page.getByRole('button', { name: 'Connect' }).click();
  const problem = page.locator('.problem');
  await problem.waitFor({ timeout: 15000 });
  assert.match(await problem.textContent(), /No WebSocket bridge answered at ws:\/\/127\.0\.0\.1:9/);
  assert.match(await problem.textContent(), /fota bridge --ws 127\.0\.0\.1:9000 --port \/dev\/ttyUSB0/);
  await page.context().close();
});

test('websocket bridge: a second tab on a busy device gets "in use", and may cancel', async () => {
  const first = await openApp(browser, server.url);
  await first.getByRole('radio', { name: /WebSocket bridge/ }).check();
  // Typed without ws://: the page adds it (no "Please enter a URL" from the browser).
  await first.getByLabel('Bridge address').fill(`127.0.0.1:${sim.port}`);
  await first.getByRole('button', { name: 'Connect' }).click();
  await first.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  assert.equal(await first.locator('#ws-url').count(), 0);
  assert.match(await first.locator('[data-testid=conn-status]').textContent(), new RegExp(`WebSocket ws://127\\.0\\.0\\.1:${sim.port}`));

  const second = await openApp(browser, server.url);
  await second.getByRole('radio', { name: /WebSocket bridge/ }).check();
  await second.getByLabel('Bridge address').fill(sim.url);
  // The user gives up while it waits: back to the form, no error.
  await second.getByRole('button', { name: 'Connect' }).click();
  await second.getByRole('button', { name: 'Cancel', exact: true }).click();
  await second.getByRole('button', { name: 'Connect', exact: true }).waitFor({ timeout: 5000 });
  assert.equal(await second.locator('.problem').count(), 0);
  assert.match(await second.locator('[data-testid=conn-status]').textContent(), /Not connected/);
  // Waiting: a timeout that says the device is in use.
  const t0 = Date.now();
  await second.getByRole('button', { name: 'Connect' }).click();
  const problem = second.locator('.problem');
  await problem.waitFor({ timeout: 15000 });
  console.log(`device in use reported after ${Date.now() - t0} ms`);
  assert.match(await problem.textContent(), /did not take the connection within 5 s: the device is in use by another page or program/);
  assert.match(await problem.textContent(), /Disconnect the other tab/);
  await shot(second, '43-websocket-in-use');

  // Once the first lets go, the second gets it (its given-up sockets do not hold it).
  await first.getByRole('button', { name: 'Disconnect from the device' }).click();
  await first.locator('[data-testid=conn-status]', { hasText: 'Not connected' }).waitFor();
  await second.getByRole('button', { name: 'Connect' }).click();
  await second.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
  await first.context().close();
  await second.context().close();
});

test('a browser without Web Serial gets a helpful panel', async () => {
  const page = await openApp(browser, server.url, {
    init: { script: () => { delete Navigator.prototype.serial; }, arg: undefined },
  });
  assert.ok(await page.getByRole('radio', { name: /Simulated device/ }).isChecked());
  await page.getByRole('radio', { name: /USB serial/ }).check();
  const panel = page.locator('[data-testid=no-web-serial]');
  await panel.waitFor();
  assert.match(await panel.textContent(), /Chrome, Edge and Opera/);
  assert.match(await panel.textContent(), /fota bridge --ws 127\.0\.0\.1:9000 --port \/dev\/ttyUSB0/);
  assert.ok(await page.getByRole('button', { name: 'Connect' }).isDisabled());
  await shot(page, '42-no-web-serial');
  await page.context().close();
});

test('the whole update works from the keyboard alone', async () => {
  const page = await openApp(browser, server.url);
  // Tab to a control whose accessible text matches `name` and press Enter.
  async function tabTo(name) {
    for (let i = 0; i < 60; i++) {
      // Focus moves to each step's first control: it may be there already.
      if (i > 0 || !(await page.evaluate(() => document.activeElement?.tagName === 'BUTTON'))) await page.keyboard.press('Tab');
      const text = await page.evaluate(() => {
        const el = document.activeElement;
        return el ? `${el.tagName} ${el.textContent.trim()}` : '';
      });
      if (text.startsWith('BUTTON') && text.includes(name)) {
        // The focused control shows a focus ring.
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', `visible focus on ${name}`);
        await page.keyboard.press('Enter');
        return;
      }
    }
    throw new Error(`no focusable button "${name}"`);
  }
  await tabTo('Connect');
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await tabTo('Continue: choose the image');
  await tabTo('Healthy blink v2');
  await page.locator('[data-testid=image-bytecode] .md5').waitFor();
  await tabTo('Continue: check the slot');
  await tabTo('Start the update');
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  // The screen-reader live region said how it ended.
  assert.match(await page.locator('[data-testid=announce]').textContent(), /Update finished\. The new firmware is running/);
  await page.context().close();
});

test('the connection settings are remembered across visits', async () => {
  const page = await openApp(browser, server.url);
  await page.locator('input[name=layout][value=vm]:visible').check();
  await page.getByRole('radio', { name: /WebSocket/ }).check();
  await page.getByLabel('Bridge address').fill('ws://127.0.0.1:9321');
  // The page saves its settings after it renders the change: wait for the last one.
  const stored = () => page.evaluate(() => JSON.parse(localStorage.getItem('fota-web.settings') || 'null'));
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('fota-web.settings') || 'null')?.ws_url === 'ws://127.0.0.1:9321', null, { timeout: 5000 })
    .catch(async () => assert.fail(`settings not saved: ${JSON.stringify(await stored())}`));
  const saved = await stored();
  assert.equal(saved.layout, 'vm');
  assert.equal(saved.transport, 'ws');
  assert.equal(saved.ws_url, 'ws://127.0.0.1:9321');
  await page.reload();
  await page.waitForSelector('html[data-ready]');
  assert.ok(await page.getByRole('radio', { name: /WebSocket/ }).isChecked());
  assert.equal(await page.getByLabel('Bridge address').inputValue(), 'ws://127.0.0.1:9321');
  await page.getByRole('radio', { name: /Simulated device/ }).check();
  assert.ok(await page.locator('input[name=layout][value=vm]:visible').isChecked());
  // A damaged entry falls back to the defaults instead of breaking the page.
  await page.evaluate(() => localStorage.setItem('fota-web.settings', '{"layout": 42'));
  await page.reload();
  await page.waitForSelector('html[data-ready]');
  assert.ok(await page.getByRole('radio', { name: /Simulated device/ }).isChecked());
  assert.ok(await page.locator('input[name=layout][value=bytecode]:visible').isChecked());
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
