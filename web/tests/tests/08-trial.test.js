// The record panel while new firmware runs on trial: an "on trial" badge with how long it
// has run so far and how long it still has to confirm itself (by the device's own clock,
// Info tag 9); a firmware that runs on without confirming itself shown as it is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, shot, docShot } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

test('on trial: a badge and the time left to confirm, until the device reverts', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('[data-testid=trial-badge]').count(), 0, 'no badge on a confirmed record');
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Faulty blink v3' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  // The faulty firmware runs on trial and never confirms itself: its watchdog restarts it.
  const badge = page.locator('[data-testid=trial-badge]');
  await badge.waitFor({ timeout: 60000 });
  const first = await badge.textContent();
  // The simulated device declares its deadline (Info tag 7): its watchdog's 1.5 s, counted
  // down by its own clock (tag 9).
  assert.match(first, /^on trial for \d+ s: it (must confirm within 1\.5 s, [\d.]+ s left by the device's clock|had to confirm within 1\.5 s of its start)/);
  assert.equal(await page.locator('[data-testid=record-status]').getAttribute('data-state'), 'trial');
  await shot(page, '110-on-trial');
  // The clock moves: less left, the deadline passed, or the device already reverted.
  const left = (t) => Number(/, ([\d.]+) s left/.exec(t || '')?.[1] ?? 0);
  await page.waitForFunction((before) => {
    const t = document.querySelector('[data-testid=trial-badge]')?.textContent || '';
    const m = /, ([\d.]+) s left/.exec(t);
    return !m || Number(m[1]) < before;
  }, left(first), { timeout: 5000 });
  assert.ok(left(first) <= 1.5);
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'reverted');
  assert.equal(await badge.count(), 0, 'reverted: no trial any more');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a firmware that never confirms itself stays on trial, and the badge says so', async () => {
  const page = await openApp(browser, server.url);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Unconfirmed blink v4' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  // The update waits for the device's deadline plus its margin, and says so.
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'ontrial');
  const outcome = await page.locator('[data-testid=outcome]').textContent();
  assert.match(outcome, /Running on trial, not confirmed/);
  assert.match(outcome, /next restart, whatever causes it, brings back the previous firmware \(bytecode slot 0 with VM slot 0\)/);
  // Nothing reverted it: the device still answers, on trial past its deadline.
  const badge = page.locator('[data-testid=trial-badge]');
  await page.waitForFunction(() => document.querySelector('[data-testid=trial-badge]')?.dataset.overdue === 'true', null, { timeout: 10000 });
  assert.match(await badge.textContent(), /^on trial, not confirmed for \d+ s: it had to confirm within 1\.5 s of its start and has not$/);
  const overdue = page.locator('[data-testid=trial-overdue]');
  assert.match(await overdue.textContent(), /nothing reverts it now: the next restart, whatever causes it, brings back bytecode slot 0 with VM slot 0\. Restart now to go back to it, or wait/);
  assert.equal(await page.locator('[data-testid=record-status]').getAttribute('data-state'), 'trial');
  await page.locator('.device').scrollIntoViewIfNeeded();
  await docShot(page, 'on-trial-not-confirmed', { fullPage: true });
  // The real next step: restart now, and the previous firmware is back.
  await page.getByRole('button', { name: 'Restart now (brings back bytecode slot 0)' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=record-status]')?.dataset.state === 'confirmed', null, { timeout: 20000 });
  assert.equal(await badge.count(), 0, 'back on the previous firmware: no trial');
  assert.match(await page.locator('[data-testid=record-status]').textContent(), /bytecode slot 0 with VM slot 0, confirmed/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
