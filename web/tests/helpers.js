// Shared pieces of the browser tests: a static server for dist/, Debian's Chromium driven
// by playwright-core, screenshots, and the `fota sim --ws` device server.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
export const dist = process.env.FOTA_DIST ? path.resolve(process.env.FOTA_DIST) : path.join(root, 'dist');
export const shots = path.join(here, 'screenshots');

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** Serve `dir` on 127.0.0.1 at a free port. Resolves to { url, close }. */
export function serve(dir = dist) {
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    throw new Error(`no web app build in ${dir}: run web/tests/run.sh (it builds it)`);
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = path.normalize(path.join(dir, decodeURIComponent(url.pathname)));
    if (!file.startsWith(dir)) { res.writeHead(403).end(); return; }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(data);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A new page with the app loaded; collects console errors into page.errors. */
export async function openApp(browser, url, { init, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 }, colorScheme });
  if (init) await context.addInitScript(init.script, init.arg);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('html[data-ready]', { timeout: 30000 });
  return page;
}

export async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** The `fota` CLI binary: FOTA_CLI, or the workspace's debug/release build. */
export function fotaCli() {
  if (process.env.FOTA_CLI) return process.env.FOTA_CLI;
  for (const p of ['target/debug/fota', 'target/release/fota']) {
    const f = path.join(root, p);
    if (fs.existsSync(f)) return f;
  }
  return null;
}

/** Start `fota sim --ws 127.0.0.1:PORT` and wait until it accepts connections. */
export async function startSimServer(args = []) {
  const cli = fotaCli();
  if (!cli) throw new Error('the fota CLI is not built: cargo build -p fota-cli');
  const port = await freePort();
  const proc = spawn(cli, ['sim', '--ws', `127.0.0.1:${port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`fota sim exited: ${output}`);
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline) { proc.kill(); throw new Error(`fota sim did not start: ${output}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, url: `ws://127.0.0.1:${port}`, output: () => output, stop: () => { proc.kill(); } };
}
