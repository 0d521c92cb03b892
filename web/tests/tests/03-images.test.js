// Images: a file dropped with a real drop event (a DataTransfer holding a File built in
// the page), and the refusals of an image too large for the slot and of an empty one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, openApp, shot, root } from '../helpers.js';

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

/** `data` as Intel HEX text from `addr`. */
function intelHex(addr, data) {
  const rec = (type, offset, bytes) => {
    const body = [bytes.length, (offset >> 8) & 255, offset & 255, type, ...bytes];
    const sum = (256 - (body.reduce((a, b) => a + b, 0) & 255)) & 255;
    return `:${[...body, sum].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('')}\n`;
  };
  let out = '';
  for (let i = 0; i < data.length; i += 16) {
    const at = addr + i;
    if (i === 0 || (at & 0xffff) === 0) out += rec(4, 0, [(at >>> 24) & 255, (at >>> 16) & 255]);
    out += rec(0, at & 0xffff, [...data.subarray(i, i + 16)]);
  }
  return out + ':00000001FF\n';
}

test('HEX files go to the slot their addresses select; pictures are flagged; a HEX across slots is refused', async () => {
  const page = await openApp(browser, server.url);
  await connectSim(page);
  // Linked for bytecode slot 1 (0x50000), chosen through the bytecode card's picker.
  await page.locator('#file-bytecode').setInputFiles({ name: 'app.hex', mimeType: 'text/plain', buffer: Buffer.from(intelHex(0x50000, pattern(5000))) });
  const card = page.locator('[data-testid=image-bytecode]');
  await card.locator('.name', { hasText: 'app.hex' }).waitFor();
  assert.match(await card.locator('[data-testid=image-format]').textContent(), /^Intel HEX, 4\.9 KiB at 0x00050000: Bytecode slot 1$/);
  assert.equal(await card.locator('.md5').textContent(), crypto.createHash('md5').update(pattern(5000)).digest('hex'));
  await shot(page, '23-hex');
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  assert.equal(await page.locator('#slot-bytecode').inputValue(), '1');
  assert.ok(await page.locator('#slot-bytecode').isDisabled(), 'its addresses choose the slot');
  await page.getByRole('button', { name: 'Back' }).click();

  // A picture picked by mistake: loaded, with the warning shown before anything is written.
  const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(4000, 7)]);
  await page.locator('#file-bytecode').setInputFiles({ name: 'photo.bin', mimeType: 'image/png', buffer: png });
  await card.locator('[data-testid=image-warnings]').waitFor();
  assert.match(await card.locator('[data-testid=image-warnings]').textContent(), /looks like a picture .*not firmware/);
  await shot(page, '24-picture-warning');

  // Data across two slots: refused, saying which.
  await page.locator('#file-bytecode').setInputFiles({ name: 'across.hex', mimeType: 'text/plain', buffer: Buffer.from(intelHex(0x50000 - 16, pattern(64))) });
  const problem = page.locator('.problem', { hasText: 'across.hex' });
  await problem.waitFor();
  assert.match(await problem.textContent(), /across\.hex writes into several slots: bytecode slot 0 .*bytecode slot 1/);

  // The micro:bit's MicroPython HEX (from uflash 1.2.4): read as HEX, linked at 0, too
  // large for this simulator's 64 KiB VM slot: a clear refusal, nothing written.
  const uflash = path.join(root, 'target', 'testdata', 'uflash-1.2.4.py');
  if (fs.existsSync(uflash)) {
    const src = fs.readFileSync(uflash, 'utf8');
    const start = src.indexOf('_RUNTIME = """') + 14;
    const hex = src.slice(start, src.indexOf('"""', start));
    await page.locator('#file-bytecode').setInputFiles({ name: 'micropython.hex', mimeType: 'text/plain', buffer: Buffer.from(hex) });
    await page.locator('.problem', { hasText: 'micropython.hex' }).waitFor();
    assert.match(await page.locator('.problem').textContent(), /micropython\.hex writes into several slots: VM slot 0/);
  } else {
    console.log('skipped the MicroPython HEX: target/testdata/uflash-1.2.4.py is not there');
  }
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
