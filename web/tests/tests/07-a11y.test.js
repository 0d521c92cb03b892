// Accessibility: axe-core finds no serious or critical violation in any state of the
// update (connect, record, image, slot, streaming, accepted, reverted, cancelled), in light
// and dark, on a desktop and a phone; keyboard focus follows the steps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, axeViolations } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

const CASES = [
  { name: 'desktop light', colorScheme: 'light', viewport: { width: 1366, height: 768 }, mobile: false },
  { name: 'desktop dark', colorScheme: 'dark', viewport: { width: 1366, height: 768 }, mobile: false },
  { name: 'phone light', colorScheme: 'light', viewport: { width: 390, height: 844 }, mobile: true },
  { name: 'phone dark', colorScheme: 'dark', viewport: { width: 390, height: 844 }, mobile: true },
];

for (const c of CASES) {
  test(`axe-core: no serious or critical violation, ${c.name}`, async () => {
    const page = await openApp(browser, server.url, { ...c, bypassCSP: true });
    const found = [];
    const audit = async (state) => {
      const v = await axeViolations(page);
      console.log(`axe ${c.name} ${state}: ${v.length} serious/critical${v.length ? `: ${v.map((x) => `${x.id} (${x.nodes.length})`).join(', ')}` : ''}`);
      for (const x of v) found.push(`${state}: ${x.id} [${x.impact}] ${x.nodes.slice(0, 4).join(' | ')}`);
    };
    await page.getByRole('checkbox', { name: /Raise the baud rate/ }).uncheck();
    await audit('connect');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
    await audit('record');
    await page.getByRole('button', { name: 'Continue: choose the image' }).click();
    await page.getByRole('button', { name: 'Faulty blink v3' }).click();
    await page.locator('[data-testid=image-bytecode] .md5').waitFor();
    await audit('image');
    await page.getByRole('button', { name: 'Continue: check the slot' }).click();
    await audit('slot');
    await page.getByRole('button', { name: 'Start the update' }).click();
    await page.locator('[data-testid=progress-stats]').waitFor({ timeout: 20000 });
    await audit('streaming');
    await page.locator('[data-testid=outcome][data-outcome=reverted]').waitFor({ timeout: 60000 });
    await audit('reverted');
    await page.getByRole('button', { name: 'Choose another image' }).click();
    await page.getByRole('button', { name: 'Healthy blink v2' }).click();
    await page.getByRole('button', { name: 'Continue: check the slot' }).click();
    await page.getByRole('button', { name: 'Start the update' }).click();
    await page.waitForFunction(() => {
      const bar = document.querySelector('[role=progressbar][aria-valuenow]');
      return bar && bar.getAttribute('aria-label') === 'Sending' && Number(bar.getAttribute('aria-valuenow')) >= 20;
    }, null, { timeout: 30000, polling: 20 });
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('[data-testid=outcome][data-outcome=cancelled]').waitFor({ timeout: 15000 });
    await audit('cancelled');
    await page.getByRole('button', { name: 'Try again (resumes)' }).click();
    await page.locator('[data-testid=outcome][data-outcome=accepted]').waitFor({ timeout: 60000 });
    await audit('accepted');
    assert.deepEqual(found, []);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
}

test('keyboard focus moves to each new step\'s first control', async () => {
  const page = await openApp(browser, server.url);
  const focused = () => page.evaluate(() => {
    const el = document.activeElement;
    return el ? `${el.tagName} ${el.textContent.trim()}` : '';
  });
  // Tab from the top of the page to Connect.
  for (let i = 0; i < 40 && !(await focused()).startsWith('BUTTON Connect'); i++) await page.keyboard.press('Tab');
  assert.equal(await focused(), 'BUTTON Connect');
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.waitForFunction(() => document.activeElement?.textContent.trim() === 'Continue: choose the image', null, { timeout: 5000 });
  await page.keyboard.press('Enter');
  // No Tab needed: the image step's first control has the focus.
  await page.waitForFunction(() => document.activeElement?.textContent.trim() === 'Choose file…', null, { timeout: 5000 });
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'BUTTON Healthy blink v2');
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=image-bytecode] .md5').waitFor();
  // Loading an image keeps the focus where the user is.
  assert.match(await focused(), /^BUTTON/);
  // Continue, reached with Tabs from there; then the slot step's first control.
  for (let i = 0; i < 10 && (await focused()) !== 'BUTTON Continue: check the slot'; i++) await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'slot-bytecode', null, { timeout: 5000 });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
