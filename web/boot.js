// Starts the web app: loads the wasm-bindgen glue and the WebAssembly Trunk built, whose
// hashed names Trunk writes on this script's data attributes (Trunk.toml, pattern_script).
// A file of its own rather than an inline script, so that the page's
// Content-Security-Policy allows scripts from the page's own files only.
//
// The loading screen counts what has arrived, and the offline copy (sw.js) is set up
// once the app runs.
//
// What the first screen does not need (crates/fota-web-extras: the in-page simulated
// device, the LZMA encoder) is a module of its own, fetched when first used: the app
// reaches it through `fotaExtras` below (crates/fota-web/src/extras.rs).
const me = document.querySelector('script[data-fota-js]');
const boot = document.getElementById('boot');
const url = (name) => new URL(me.dataset[name], document.baseURI).href;

/** The loaded module (on this page's thread), once loaded. */
let extras = null;
let loading = null;
function loadExtras() {
  loading ??= import(url('fotaExtrasJs'))
    .then(async (m) => {
      await m.default({ module_or_path: url('fotaExtrasWasm') });
      extras = m;
      return m;
    })
    .catch((e) => {
      loading = null; // try again at the next use (back online)
      throw e;
    });
  return loading;
}

/** The encoder's worker (web/encoder-worker.js), started at the first encode. */
let worker = null;
let calls = 0;
const pending = new Map();
function encoder() {
  if (worker) return worker;
  const w = new Worker(url('fotaWorker'), { type: 'module' });
  const stop = (why) => {
    for (const p of pending.values()) p.reject(new Error(why));
    pending.clear();
    w.terminate();
    if (worker === w) worker = null;
  };
  w.onmessage = ({ data }) => {
    const p = pending.get(data.id);
    if (!p) return;
    pending.delete(data.id);
    if (data.error !== undefined) {
      // A failed encoder (or a module that could not load) is not used again.
      stop(data.error);
      p.reject(new Error(data.error));
      return;
    }
    encodes.push({ bytes: p.bytes, out: data.out.byteLength, ms: data.ms });
    p.resolve(data.out);
  };
  w.onerror = (e) => {
    e.preventDefault();
    stop(`the encoder could not start (${e.message || 'its script could not be loaded'})`);
  };
  worker = w;
  return w;
}
/** What each encode took in the worker: { bytes, out, ms }. */
const encodes = [];

globalThis.fotaExtras = Object.freeze({
  /** A new simulated device with `layout` ('vm' or 'bytecode'), the module loaded first. */
  async sim(layout) {
    const m = await loadExtras();
    return new m.SimDevice(layout);
  },
  /** Whether a simulated device with `layout` is parked (none before the module loads). */
  hasParked(layout) {
    return extras !== null && extras.has_parked(layout);
  },
  factoryReset() {
    extras?.factory_reset();
  },
  /** The compressed stream of `image` (a delta from `base` when given), from the worker. */
  encode(base, image) {
    return new Promise((resolve, reject) => {
      const id = ++calls;
      pending.set(id, { resolve, reject, bytes: image.byteLength });
      const moved = base ? [image.buffer, base.buffer] : [image.buffer];
      encoder().postMessage({ id, js: url('fotaExtrasJs'), wasm: url('fotaExtrasWasm'), base, image }, moved);
    });
  },
  encodes,
});

/** The WebAssembly as a Response whose body reports its progress on the loading screen. */
async function fetchWithProgress(url) {
  const res = await fetch(url);
  if (!res.ok || !res.body || !boot) return res;
  // With a compressed transfer, Content-Length counts compressed bytes while the body
  // yields plain ones: then only the count is shown, not a fraction.
  const encoded = res.headers.get('content-encoding');
  const total = encoded ? 0 : Number(res.headers.get('content-length')) || 0;
  const bar = document.createElement('progress');
  bar.max = 1;
  if (total === 0) bar.removeAttribute('value');
  bar.setAttribute('aria-label', 'Loading the updater');
  const note = document.createElement('p');
  note.className = 'boot-count';
  boot.append(bar, note);
  let got = 0;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) {
      got += chunk.byteLength;
      if (total) bar.value = Math.min(got / total, 1);
      note.textContent = `${Math.round(got / 1024)} KiB${total ? ` of ${Math.round(total / 1024)} KiB` : ''}`;
      out.enqueue(chunk);
    },
  }));
  return new Response(counted, { headers: { 'Content-Type': 'application/wasm' } });
}

try {
  const glue = await import(me.dataset.fotaJs);
  await glue.default({ module_or_path: fetchWithProgress(me.dataset.fotaWasm) });
} catch (e) {
  if (boot) {
    boot.textContent = `The FOTA web updater could not start (${e}). It needs a current browser with WebAssembly: Chrome, Edge, Opera, Firefox or Safari.`;
  }
  throw e;
}

// Works offline after this visit: the service worker keeps the page's files.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn(`offline copy not set up: ${e}`));
}
