// Shared pieces of the browser tests: dist/ served by `fota serve` (with the page's
// Content-Security-Policy, as .ci/serve serves it), Debian's Chromium driven by
// playwright-core, screenshots, and the `fota sim --ws` device server.
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

/** Lines of a child's stdout until one matches `re`; resolves to the match. */
function waitForLine(proc, re, what, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => { proc.kill(); reject(new Error(`${what} did not start: ${output}`)); }, timeoutMs);
    const onData = (d) => {
      output += d;
      const m = re.exec(output);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited (${code}): ${output}`)); });
  });
}

/** The origin of the page last served by `serve()`: what `startSimServer` allows by default. */
let servedOrigin = null;

/**
 * Serve `dir` with `fota serve` (as .ci/serve does: the Content-Security-Policy and the
 * other headers) on 127.0.0.1 at a free port. Resolves to { url, origin, close }.
 */
export async function serve(dir = dist) {
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    throw new Error(`no web app build in ${dir}: run web/tests/run.sh (it builds it)`);
  }
  const cli = fotaCli();
  if (!cli) throw new Error('the fota CLI is not built: cargo build -p fota-cli');
  const proc = spawn(cli, ['serve', dir, '--addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [, url] = await waitForLine(proc, /^web app: (\S+)$/m, 'fota serve');
  const origin = new URL(url).origin;
  servedOrigin = origin;
  return {
    url,
    origin,
    close: () => new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', () => r()); proc.kill(); } }),
  };
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

/**
 * Start `fota sim --ws 127.0.0.1:PORT` and wait until it listens. Pages from `allowOrigin`
 * (by default the origin `serve()` last served) may connect; `url` is the plain address a
 * page uses, `tokenUrl` the one the simulator printed for programs (with its token).
 */
export async function startSimServer(args = [], { allowOrigin = servedOrigin } = {}) {
  const cli = fotaCli();
  if (!cli) throw new Error('the fota CLI is not built: cargo build -p fota-cli');
  const port = await freePort();
  const allow = allowOrigin ? ['--allow-origin', allowOrigin] : [];
  const proc = spawn(cli, ['sim', '--ws', `127.0.0.1:${port}`, ...allow, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const [, tokenUrl] = await waitForLine(proc, /^ws: (\S+)$/m, 'fota sim');
  return { port, url: `ws://127.0.0.1:${port}`, tokenUrl, output: () => output, stop: () => { proc.kill(); } };
}

/**
 * A serial device behind `fota bridge`: `fota sim --pty` (a simulated device on a
 * pseudo-terminal) bridged by `fota bridge --ws 127.0.0.1:PORT`, which lets pages from
 * `allowOrigin` (by default the origin `serve()` last served) in.
 */
export async function startBridge(simArgs = [], { allowOrigin = servedOrigin } = {}) {
  const cli = fotaCli();
  if (!cli) throw new Error('the fota CLI is not built: cargo build -p fota-cli');
  const sim = spawn(cli, ['sim', '--pty', ...simArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [, pty] = await waitForLine(sim, /^pty: (\S+)$/m, 'fota sim --pty');
  const port = await freePort();
  const allow = allowOrigin ? ['--allow-origin', allowOrigin] : [];
  const bridge = spawn(cli, ['--port', pty, 'bridge', '--ws', `127.0.0.1:${port}`, ...allow], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  bridge.stdout.on('data', (d) => { output += d; });
  bridge.stderr.on('data', (d) => { output += d; });
  const [, tokenUrl] = await waitForLine(bridge, /^ws: (\S+)$/m, 'fota bridge');
  return {
    url: `ws://127.0.0.1:${port}`,
    tokenUrl,
    output: () => output,
    stop: () => { bridge.kill(); sim.kill(); },
  };
}
