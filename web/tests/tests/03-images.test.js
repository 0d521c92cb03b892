// Images: a file dropped with a real drop event (a DataTransfer holding a File built in
// the page), and the refusals of an image too large for the slot and of an empty one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { serve, launch, openApp, shot } from '../helpers.js';

let server, browser;
before(async () => { server = await serve(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.close(); });

// The same bytes are built in the page and here.
const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 8) * 7 + 3) & 255);

async function connectSim(page) {
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
}

/** Drop a File of `size` pattern bytes named `name` on `selector`, with a real DragEvent. */
async function drop(page, selector, name, size) {
  await page.evaluate(({ selector, name, size }) => {
    const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 31 + (i >> 8) * 7 + 3) & 255);
    const file = new File([bytes], name, { type: 'application/octet-stream' });
    const dt = new DataTransfer();
    dt.items.add(file);
    const target = document.querySelector(selector);
    for (const type of ['dragenter', 'dragover', 'drop']) {
      target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    }
  }, { selector, name, size });
}

test('an image dropped anywhere on the page is loaded, hashed, and flashed', async () => {
  const page = await openApp(browser, server.url);
  await connectSim(page);
  await drop(page, 'footer', 'app-dropped.bin', 20000);
  const card = page.locator('[data-testid=image-bytecode]');
  await card.locator('.name', { hasText: 'app-dropped.bin' }).waitFor();
  const md5 = crypto.createHash('md5').update(pattern(20000)).digest('hex');
  assert.equal(await card.locator('.md5').textContent(), md5);
  assert.match(await card.textContent(), /20000 bytes/);
  assert.match(await card.textContent(), /Bytecode slot 1 at 0x00050000/);
  await shot(page, '20-dropped');
  // Not a firmware the simulated device can boot: it never confirms, and the device reverts.
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'reverted');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('an image larger than the slot and an empty image are refused with their messages', async () => {
  const page = await openApp(browser, server.url);
  await connectSim(page);
  // Too large: dropped on the bytecode card.
  await drop(page, '[data-testid=image-bytecode]', 'huge.bin', 300 * 1024);
  const problem = page.locator('.problem');
  await problem.waitFor();
  assert.match(await problem.textContent(), /The image huge\.bin is 307200 bytes, larger than the 262144-byte slot\./);
  assert.match(await problem.textContent(), /Build a smaller image/);
  await shot(page, '21-too-large');
  // Empty: through the file picker.
  await page.locator('#file-bytecode').setInputFiles({ name: 'empty.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(0) });
  await problem.filter({ hasText: 'empty.bin' }).waitFor();
  assert.match(await problem.textContent(), /The image empty\.bin is empty\./);
  assert.match(await problem.textContent(), /not an empty file/);
  await shot(page, '22-empty');
  // Neither was taken: nothing to flash yet.
  assert.ok(await page.getByRole('button', { name: 'Continue: check the slot' }).isDisabled());
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
