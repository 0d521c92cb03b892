// Phones and small windows: at 360, 390 and 1366 px wide, every step of the update fits
// the window (no sideways panning), the stepper shows the current step, and the step's
// main action is on screen without panning. Regenerates the README's screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, docShot, overflow } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

const SIZES = [
  { name: 'phone-360', viewport: { width: 360, height: 740 }, mobile: true },
  { name: 'phone-390', viewport: { width: 390, height: 844 }, mobile: true, shots: true },
  { name: 'desktop', viewport: { width: 1366, height: 768 }, mobile: false },
];

/** The checks of one step: no overflow, the stepper's current step on screen, `action` reachable. */
async function check(page, size, step, action) {
  const o = await overflow(page);
  const width = size.viewport.width;
  console.log(`${size.name} ${step}: scrollWidth - innerWidth = ${o.excess}`);
  assert.ok(o.excess <= 0, `${size.name} ${step}: the page is ${o.excess} px wider than the window: ${o.culprits.join(', ')}`);
  const current = page.locator('.stepper li[aria-current=step]');
  if (await current.count()) {
    const box = await current.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= width, `${size.name} ${step}: the current step is off screen`);
    const label = await current.getAttribute('data-stage');
    if (size.mobile) {
      assert.match(await page.locator('.step-now').textContent(), new RegExp(`Step \\d of 8: ${label.replace(/[&]/g, '\\$&')}`));
    }
  }
  if (action) {
    const button = page.getByRole('button', { name: action, exact: true });
    await button.scrollIntoViewIfNeeded();
    const box = await button.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= width, `${size.name} ${step}: "${action}" is cut off (${JSON.stringify(box)})`);
  }
}

for (const size of SIZES) {
  test(`every step fits ${size.viewport.width} px: ${size.name}`, async () => {
    const page = await openApp(browser, server.url, { viewport: size.viewport, mobile: size.mobile });
    await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
    await check(page, size, 'connect', 'Connect');
    if (size.shots) await docShot(page, 'phone-connect', { upTo: '#flow' });
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
    await check(page, size, 'record', 'Continue: choose the image');
    await page.getByRole('button', { name: 'Continue: choose the image' }).click();
    await page.getByRole('button', { name: 'Healthy blink v2' }).click();
    await page.locator('[data-testid=image-bytecode] .md5').waitFor();
    await check(page, size, 'image', 'Continue: check the slot');
    await page.getByRole('button', { name: 'Continue: check the slot' }).click();
    await check(page, size, 'slot', 'Start the update');
    if (size.shots) await docShot(page, 'phone-slot', { upTo: '#flow' });
    await page.getByRole('button', { name: 'Start the update' }).click();
    await page.waitForFunction(() => {
      const bar = document.querySelector('[role=progressbar][aria-valuenow]');
      return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 40;
    }, null, { timeout: 30000, polling: 20 });
    await check(page, size, 'stream', 'Cancel');
    if (size.shots) await docShot(page, 'phone-stream', { upTo: '#flow' });
    else if (!size.mobile) await docShot(page, 'stream', { fullPage: true });
    await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
    await check(page, size, 'accepted', 'Update again');
    if (size.shots) await docShot(page, 'phone-accepted', { upTo: '#flow' });

    // A faulty image: reverted, with the device's reason.
    await page.getByRole('button', { name: 'Update again' }).click();
    await page.getByRole('button', { name: 'Faulty blink v3' }).click();
    await page.getByRole('button', { name: 'Continue: check the slot' }).click();
    await page.getByRole('button', { name: 'Start the update' }).click();
    await page.locator('[data-testid=outcome][data-outcome=reverted]').waitFor({ timeout: 60000 });
    await check(page, size, 'reverted', 'Choose another image');
    if (size.shots) await docShot(page, 'phone-reverted', { upTo: '#flow' });
    else if (!size.mobile) await docShot(page, 'reverted', { fullPage: true });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
}

test('the accepted outcome in dark mode, desktop (README screenshot)', async () => {
  const page = await openApp(browser, server.url, { colorScheme: 'dark', viewport: { width: 1366, height: 768 } });
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome][data-outcome=accepted]').waitFor({ timeout: 60000 });
  const o = await overflow(page);
  assert.ok(o.excess <= 0, o.culprits.join(', '));
  await docShot(page, 'accepted-dark', { fullPage: true });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the connection lost mid-stream, desktop (README screenshot)', async () => {
  const page = await openApp(browser, server.url, { viewport: { width: 1366, height: 768 } });
  await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.waitForFunction(() => {
    const bar = document.querySelector('[role=progressbar][aria-valuenow]');
    return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 40;
  }, null, { timeout: 30000, polling: 20 });
  await page.getByRole('button', { name: 'Pull the simulated cable' }).click();
  await page.locator('.problem', { hasText: 'The update stopped' }).waitFor({ timeout: 15000 });
  const o = await overflow(page);
  assert.ok(o.excess <= 0, o.culprits.join(', '));
  await docShot(page, 'connection-lost', { fullPage: true });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
