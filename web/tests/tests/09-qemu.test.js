// The web app against the real firmware: `fota qemu --ws` runs the agent on an emulated
// Cortex-M4 (QEMU mps2-an386) and puts its UART on a WebSocket through the same bridge
// as `fota bridge` (origin check and token included). The page streams a real bytecode
// program (`fota sample healthy`), the firmware's VM runs it on trial and it accepts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { serve, launch, openApp, shot, freePort, fotaCli } from '../helpers.js';

let server, browser, qemu, dir;

/** Start `fota qemu --ws` and wait for the address it prints (the firmware is built first if needed). */
async function startQemu(layout, origin) {
  const port = await freePort();
  const args = ['qemu', '--layout', layout, '--state', path.join(dir, `flash-${layout}`),
    '--ws', `127.0.0.1:${port}`, '--allow-origin', origin];
  const proc = spawn(fotaCli(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const started = new Promise((resolve, reject) => {
    // Building the firmware on a fresh checkout takes a few minutes.
    const timer = setTimeout(() => reject(new Error(`fota qemu did not start: ${output}`)), 600000);
    proc.stdout.on('data', (d) => {
      output += d;
      if (/^ws: \S+$/m.test(output)) { clearTimeout(timer); resolve(); }
    });
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`fota qemu exited (${code}): ${output}`)); });
  });
  await started;
  return { url: `ws://127.0.0.1:${port}`, output: () => output, stop: () => proc.kill() };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fota-qemu-web-'));
  server = await serve();
  browser = await launch();
});
after(async () => {
  qemu?.stop();
  await browser?.close();
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the firmware on an emulated Cortex-M4, through the bridge: a real program is accepted', { timeout: 900000 }, async () => {
  qemu = await startQemu('bytecode', server.origin);
  const program = path.join(dir, 'healthy.bin');
  execFileSync(fotaCli(), ['sample', 'healthy', '-o', program]);

  const page = await openApp(browser, server.url);
  await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
  await page.getByLabel('Bridge address').fill(qemu.url);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 30000 });
  // The device describes itself: the firmware's agent, not the simulator.
  assert.match(await page.locator('#device-title').locator('xpath=../..').textContent(), /qemu-mps2-an386/);
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.locator('#file-bytecode').setInputFiles(program);
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 180000 });
  await shot(page, '60-qemu-accepted');
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted', qemu.output());
  // The program itself ran on the emulated CPU and said so on the device's log.
  const log = await page.getByRole('log').textContent();
  assert.match(log, /self-test passed/, log);
  assert.match(qemu.output(), /client 127\.0\.0\.1:\d+ connected/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
