// The page's lock-down as `fota serve` (and so .ci/serve) sends it: the exact
// Content-Security-Policy of docs/SECURITY.md, no inline script, an injected script and an
// inline style refused, and the app working under the policy without a single violation.
// And what a page from an origin the bridge does not allow gets: no WebSocket.
import fs from 'node:fs';
import path from 'node:path';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openApp, shot, startSimServer, root } from '../helpers.js';

/** The policy exactly as docs/SECURITY.md shows it (its own unit test ties it to the code). */
const POLICY = (() => {
  const doc = fs.readFileSync(path.join(root, 'docs/SECURITY.md'), 'utf8');
  const m = /^Content-Security-Policy: (.+)$/m.exec(doc);
  assert.ok(m, 'docs/SECURITY.md shows the policy');
  return m[1];
})();

/** Collects the page's policy violations into window.__violations, from the first script on. */
function watchViolations() {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
  });
}

let server, browser, sim;
before(async () => {
  server = await serve();
  browser = await launch();
  sim = await startSimServer(['--layout', 'bytecode']);
});
after(async () => { await browser?.close(); await server?.close(); sim?.stop(); });

test('csp: the served page carries the policy and the usual headers, and no inline script', async () => {
  const res = await fetch(server.url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-security-policy'), POLICY);
  console.log(`Content-Security-Policy: ${res.headers.get('content-security-policy')}`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(res.headers.get('permissions-policy'), 'serial=(self)');
  const html = await res.text();
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.ok(scripts.length >= 1, html);
  for (const [, attrs, body] of scripts) {
    assert.match(attrs, /\bsrc=/, `an inline script: ${attrs}`);
    assert.equal(body.trim(), '', `an inline script: ${body}`);
  }
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no inline event handler');
  assert.doesNotMatch(html, /\sstyle\s*=/i, 'no inline style');
  // The wasm and the scripts carry the headers too.
  const wasm = /data-fota-wasm="?([^"\s>]+\.wasm)/.exec(html);
  assert.ok(wasm, html);
  const w = await fetch(new URL(wasm[1], server.url));
  assert.equal(w.headers.get('content-type'), 'application/wasm');
  assert.equal(w.headers.get('content-security-policy'), POLICY);
});

test('csp: the app works under the policy, and the policy refuses injected script and style', async () => {
  const page = await openApp(browser, server.url, { init: { script: watchViolations } });
  // A whole update on the in-page device: the progress bar and the flash map are drawn
  // through the CSSOM, which the policy allows.
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  const grow = await page.locator('[data-testid=flash-map] .seg.bc').first()
    .evaluate((el) => Number(getComputedStyle(el).flexGrow));
  assert.ok(grow > 0, `the flash map is to scale (flex-grow ${grow})`);
  await page.getByRole('button', { name: 'Continue: choose the image' }).click();
  await page.getByRole('button', { name: 'Healthy blink v2' }).click();
  await page.getByRole('button', { name: 'Continue: check the slot' }).click();
  await page.getByRole('button', { name: 'Start the update' }).click();
  await page.waitForFunction(() => {
    const fill = document.querySelector('.progress .fill');
    return fill && parseFloat(fill.style.width) > 0;
  }, null, { timeout: 30000, polling: 50 });
  await page.locator('[data-testid=outcome]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('[data-testid=outcome]').getAttribute('data-outcome'), 'accepted');
  await shot(page, '50-csp-accepted');

  // And the WebSocket path, to the simulator this page's origin may use.
  await page.context().close();
  const ws = await openApp(browser, server.url, { init: { script: watchViolations } });
  await ws.getByRole('radio', { name: /WebSocket bridge/ }).check();
  await ws.getByLabel('Bridge address').fill(sim.url);
  await ws.getByRole('button', { name: 'Connect' }).click();
  await ws.locator('[data-testid=record-ok]').waitFor({ timeout: 20000 });
  assert.deepEqual(await ws.evaluate(() => window.__violations), [], 'no violation while the app runs');
  assert.deepEqual(ws.errors, []);

  // What an injection would try: refused.
  const injected = await ws.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__injected = true;';
    document.body.append(s);
    const d = document.createElement('div');
    d.setAttribute('style', 'color: red');
    d.setAttribute('onclick', 'window.__clicked = true');
    document.body.append(d);
    d.click();
    await new Promise((r) => setTimeout(r, 100));
    return { script: window.__injected === true, style: getComputedStyle(d).color, clicked: window.__clicked === true };
  });
  assert.equal(injected.script, false, 'an injected inline script runs');
  assert.equal(injected.clicked, false, 'an injected inline handler runs');
  assert.notEqual(injected.style, 'rgb(255, 0, 0)', 'an injected inline style applies');
  const violations = await ws.evaluate(() => window.__violations);
  assert.ok(violations.some((v) => v.startsWith('script-src-elem inline')), violations.join('\n'));
  assert.ok(violations.some((v) => v.startsWith('style-src-attr inline')), violations.join('\n'));
  await ws.context().close();
});

test('csp: a page from an origin the bridge does not allow gets no WebSocket, and says how to allow it', async () => {
  // The same app from another port: another origin, which nobody allowed.
  const other = await serve();
  try {
    assert.notEqual(other.origin, server.origin);
    const page = await openApp(browser, other.url);
    await page.getByRole('radio', { name: /WebSocket bridge/ }).check();
    await page.getByLabel('Bridge address').fill(sim.url);
    await page.getByRole('button', { name: 'Connect' }).click();
    const problem = page.locator('.problem');
    await problem.waitFor({ timeout: 15000 });
    assert.match(await problem.textContent(), new RegExp(`--allow-origin ${other.origin.replace(/[.]/g, '\\.')}`));
    await shot(page, '51-foreign-origin-refused');
    // The simulator's log names the page and the flag.
    const deadline = Date.now() + 5000;
    while (!sim.output().includes(`a page from ${other.origin} is not an allowed origin`) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const line = sim.output().split('\n').find((l) => l.includes(other.origin));
    assert.ok(line && line.includes(`--allow-origin ${other.origin}`), sim.output());
    console.log(`refused: ${line}`);
    await page.context().close();
  } finally {
    await other.close();
  }
});
