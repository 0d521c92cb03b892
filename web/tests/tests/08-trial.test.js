// The record panel while new firmware runs on trial: an "on trial" badge with how long it
// has run so far, and during an update how long it still has to confirm itself (the
// device's own deadline).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, shot } from '../helpers.js';

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
  // down from the restart.
  assert.match(first, /^on trial for \d+ s: it (must confirm within 1\.5 s, [\d.]+ s left|had to confirm within 1\.5 s of its start)/);
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
