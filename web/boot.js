// The first screen, then the web app. The page opens on a static copy of the app's
// connect step (index.html, #first); this script makes it usable (the connection form as
// the user left it, Web Serial found by its API, the firmware a `?manifest=` offers) and
// only then starts loading the app: the wasm-bindgen glue and the WebAssembly Trunk built,
// whose hashed names Trunk writes on this script's data attributes (Trunk.toml,
// pattern_script). So the first screen needs the page, the stylesheet and this script
// only, a few KB, while the app's WebAssembly is over 200 KB compressed. A Connect
// clicked before the app is ready shows the WebAssembly's download, counted as it
// streams, and the app carries it out when it takes over (`fotaFirst` below,
// crates/fota-web/src/handoff.rs): for Web Serial the browser's port chooser opens in
// the click itself, as it must, and the app gets the chosen port.
// A script rather than a small WebAssembly module of its own: drawing a form and keeping
// its state takes a few KB of script, one file that also starts the app, where a module
// (even without Yew) would bring its own glue and runtime, one more request on a slow line.
// A file of its own rather than an inline script, so that the page's
// Content-Security-Policy allows scripts from the page's own files only.
//
// The offline copy (sw.js) is set up once the app runs.
//
// What the first screen does not need (crates/fota-web-extras: the in-page simulated
// device, the LZMA encoder) is a module of its own, fetched when first used: the app
// reaches it through `fotaExtras` below (crates/fota-web/src/extras.rs).
const me = document.querySelector('script[data-fota-js]');
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

// ---------------------------------------------------------------------------------
// The first screen.

const first = document.getElementById('first');
const form = first.querySelector('form.connect');
const options = form.querySelector('.options');
const connect = form.querySelector('.actions .btn.primary');
const actions = form.querySelector('.actions');

/** The connection form's settings, as the app keeps them in local storage
 *  (crates/fota-web/src/state/settings.rs: the same keys, values and defaults). */
const SETTINGS_KEY = 'fota-web.settings';
const DEFAULTS = Object.freeze({ transport: 'sim', layout: 'bytecode', baud: 115200, negotiate: true, ws_url: 'ws://127.0.0.1:9000' });
const VALID = {
  transport: (v) => ['sim', 'serial', 'ws'].includes(v),
  layout: (v) => ['bytecode', 'vm', 'microbit'].includes(v),
  baud: (v) => Number.isInteger(v) && v > 0 && v < 2 ** 32,
  negotiate: (v) => typeof v === 'boolean',
  ws_url: (v) => typeof v === 'string',
};
/** The saved settings; the defaults when there are none or any is unreadable (as the app
 *  reads them: one bad field and the whole entry is ignored). */
function loadSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY));
    if (saved === null || typeof saved !== 'object' || Array.isArray(saved)) return { ...DEFAULTS };
    const out = { ...DEFAULTS };
    for (const [k, valid] of Object.entries(VALID)) {
      if (!(k in saved)) continue;
      if (!valid(saved[k])) return { ...DEFAULTS };
      out[k] = saved[k];
    }
    return out;
  } catch {
    return { ...DEFAULTS };
  }
}
function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch {
    // No storage (a private window may refuse it): handed to the app all the same.
  }
}

/** Web Serial, found by its API (as the app finds it), never by the browser's name. */
const webSerial = navigator.serial !== undefined && navigator.serial !== null;
const settings = loadSettings();
if (settings.transport === 'serial' && !webSerial) settings.transport = 'sim';

/** The options of each way to reach the device: the simulated device's are the page's
 *  own markup, the others are templates of index.html. */
const OPTIONS = {
  sim: [...options.childNodes],
  serial: document.getElementById('first-serial').content,
  ws: document.getElementById('first-ws').content,
};
if (!webSerial) {
  const label = form.querySelector('label[for=transport-serial]');
  label.classList.add('unavailable');
  const badge = document.createElement('span');
  badge.className = 'badge warn';
  badge.textContent = 'not in this browser';
  label.querySelector('.choice-title').append(badge);
  OPTIONS.serial.prepend(document.getElementById('first-no-serial').content.cloneNode(true));
}

/** Connect was clicked before the app was ready: { connect, port } for the app. */
let asked = null;
/** The app took over: this screen is gone. */
let handed = false;
/** The app's WebAssembly as it streams in: bytes so far, and in all (the build's size). */
const wasmBytes = { got: 0, total: Number(me.dataset.wasmSize) || 0 };
let loadError = null;

/** The line under Connect while the app loads after a click: the WebAssembly's bytes. */
const note = document.createElement('p');
note.className = 'first-load';
// Not a live region: it changes with every piece of the download (announced once, below).
const bar = document.createElement('progress');
bar.setAttribute('aria-label', 'Loading the updater');
const noteText = document.createElement('span');
note.append(bar, noteText);
const cancel = document.createElement('button');
cancel.type = 'button';
cancel.className = 'btn ghost';
cancel.textContent = 'Cancel';
cancel.addEventListener('click', () => {
  asked = null;
  draw();
  connect.focus();
});

/** `1.5 KiB`, `32 KiB`, `1.0 MiB`: as the app writes sizes (state/format.rs). */
function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) {
    const k = bytes / 1024;
    return k < 10 ? `${k.toFixed(1)} KiB` : `${k.toFixed(0)} KiB`;
  }
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function drawProgress() {
  if (!asked && !loadError) return;
  if (loadError) {
    bar.hidden = true;
    noteText.textContent = `The updater could not be loaded (${loadError}). Check the network, then click Connect again.`;
    return;
  }
  bar.hidden = false;
  const { got, total } = wasmBytes;
  if (total) {
    bar.max = total;
    bar.value = Math.min(got, total);
  } else {
    bar.removeAttribute('value');
  }
  const done = total && got >= total;
  noteText.textContent = `Loading the updater: ${size(got)}${total ? ` of ${size(total)}` : ''}${done ? ', starting…' : ''}`;
}

/** Draw the form from `settings`, as the app draws it. */
function draw() {
  for (const radio of form.querySelectorAll('input[name=transport]')) {
    radio.checked = radio.value === settings.transport;
    radio.closest('label').classList.toggle('selected', radio.checked);
  }
  if (options.dataset.for !== settings.transport) {
    const content = OPTIONS[settings.transport];
    options.replaceChildren(...(Array.isArray(content) ? content : [content.cloneNode(true)]));
    options.dataset.for = settings.transport;
  }
  for (const radio of options.querySelectorAll('input[name=layout]')) radio.checked = radio.value === settings.layout;
  const negotiate = options.querySelector('input[type=checkbox]');
  if (negotiate) negotiate.checked = settings.negotiate;
  const baud = options.querySelector('#baud');
  if (baud) {
    baud.value = String(settings.baud);
    baud.disabled = !webSerial;
  }
  const ws = options.querySelector('#ws-url');
  if (ws && ws.value !== settings.ws_url) ws.value = settings.ws_url;
  const opening = asked !== null;
  connect.disabled = opening || (settings.transport === 'serial' && !webSerial);
  connect.textContent = opening ? 'Connecting…' : 'Connect';
  if (opening) {
    if (!cancel.isConnected) actions.append(cancel);
  } else {
    cancel.remove();
  }
  if (opening || loadError) {
    if (!note.isConnected) actions.after(note);
    drawProgress();
  } else {
    note.remove();
  }
}

form.addEventListener('change', (e) => {
  const t = e.target;
  if (t.name === 'transport' && VALID.transport(t.value)) settings.transport = t.value;
  else if (t.name === 'layout' && VALID.layout(t.value)) settings.layout = t.value;
  else if (t.type === 'checkbox') settings.negotiate = t.checked;
  else if (t.id === 'baud') settings.baud = Number.parseInt(t.value, 10) || settings.baud;
  else return;
  saveSettings();
  draw();
});
form.addEventListener('input', (e) => {
  if (e.target.id !== 'ws-url') return;
  settings.ws_url = e.target.value;
  saveSettings();
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (asked || handed || connect.disabled) return;
  asked = { connect: true, port: null };
  if (settings.transport === 'serial') {
    // Only inside the user's click (a gesture) may a page open the port chooser.
    asked.port = navigator.serial.requestPort();
    // The app reads the answer (a dismissed chooser included); until then it is handled.
    asked.port.catch(() => {});
  }
  loadError = null;
  draw();
  // The focus was on Connect, now disabled: on Cancel, the one thing to do meanwhile.
  if (!first.contains(document.activeElement) || document.activeElement === connect) cancel.focus();
  const announce = first.querySelector('[data-testid=announce]');
  if (announce) announce.textContent = 'Connecting as soon as the updater has loaded.';
  loadApp();
});

// `?manifest=URL`: the firmware a site offers, shown as the app shows it before a device
// is connected. The response goes to the app (no second download).
const manifest = (() => {
  const named = new URL(location.href).searchParams.get('manifest');
  if (named === null) return null;
  let url;
  try {
    url = new URL(named, location.href).href;
  } catch {
    return null; // the app says what is wrong with it
  }
  // Never from a cache: a manifest may change with each release (as the app fetches it).
  const m = { url, response: fetch(url, { cache: 'no-store' }), bytes: null, taken: false };
  m.response.catch(() => {});
  return m;
})();

/** A manifest as the app checks it (state/manifest.rs), or null: then the app says why. */
function checkManifest(doc) {
  const keys = (o, allowed, required) => o !== null && typeof o === 'object' && !Array.isArray(o)
    && Object.keys(o).every((k) => allowed.includes(k)) && required.every((k) => k in o);
  const str = (v) => typeof v === 'string' && v.trim() !== '';
  const hex = (v, n) => typeof v === 'string' && new RegExp(`^[0-9a-fA-F]{${2 * n}}$`).test(v);
  if (!keys(doc, ['format', 'name', 'version', 'description', 'images'], ['format', 'name', 'version', 'images'])) return null;
  if (doc.format !== 1 || !str(doc.name) || !str(doc.version)) return null;
  if (doc.description !== undefined && doc.description !== null && typeof doc.description !== 'string') return null;
  if (!Array.isArray(doc.images) || doc.images.length < 1 || doc.images.length > 16) return null;
  const seen = new Set();
  for (const e of doc.images) {
    if (!keys(e, ['layout', 'kind', 'url', 'size', 'sha256', 'signatures'], ['layout', 'kind', 'url', 'size', 'sha256'])) return null;
    if (!['bytecode', 'vm'].includes(e.layout) || !['bytecode', 'vm'].includes(e.kind)) return null;
    if (e.kind === 'vm' && e.layout === 'bytecode') return null;
    if (typeof e.url !== 'string' || e.url === '' || !Number.isInteger(e.size) || e.size <= 0 || !hex(e.sha256, 32)) return null;
    const sigs = e.signatures ?? [];
    if (!Array.isArray(sigs) || !sigs.every((s) => keys(s, ['key_id', 'signature'], ['key_id', 'signature']) && hex(s.key_id, 8) && hex(s.signature, 64))) return null;
    if (seen.has(`${e.layout}/${e.kind}`)) return null;
    seen.add(`${e.layout}/${e.kind}`);
  }
  return doc;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** The manifest's offer, as the app draws it before a device is connected (flow.rs). */
function drawOffer(doc) {
  const offer = el('div', { 'data-testid': 'manifest', class: 'offer' }, el('h3', null, 'Firmware offered'));
  if (!doc) {
    offer.append(el('p', { class: 'muted' }, `Loading the firmware manifest ${manifest.url}…`));
  } else {
    offer.append(el('p', null, el('strong', { 'data-testid': 'manifest-name' }, `${doc.name} ${doc.version}`),
      el('span', { class: 'muted small' }, ` from ${manifest.url}`)));
    if (typeof doc.description === 'string') offer.append(el('p', { class: 'muted small' }, doc.description));
    const kind = { bytecode: 'Bytecode', vm: 'VM' };
    const file = (url) => url.split(/[?#]/)[0].split('/').pop() || url;
    offer.append(el('ul', { class: 'offer-list' }, ...doc.images.map((e) => el('li', null,
      `${kind[e.kind]} image for the ${e.layout} layout: ${file(e.url)}, ${size(e.size)}`,
      el('code', { title: 'SHA-256 given by the manifest', class: 'md5' }, ` SHA-256 ${e.sha256.toLowerCase()}`)))));
    const layouts = [...new Set(doc.images.map((e) => e.layout))];
    offer.append(el('p', { class: 'muted small' }, `Images for the ${layouts.join(' and ')} layout${layouts.length === 1 ? '' : 's'}: the one for the device is fetched and checked once it is connected.`));
  }
  const flow = document.getElementById('flow');
  const old = flow.querySelector('.offer');
  if (old) old.replaceWith(offer);
  else form.before(offer);
}

if (manifest) {
  drawOffer(null);
  manifest.response.then(async (res) => {
    if (!res.ok) return; // the app reads the same response and says why
    const bytes = new Uint8Array(await res.clone().arrayBuffer());
    manifest.bytes = bytes;
    let doc = null;
    try {
      doc = checkManifest(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)));
    } catch {
      // Not UTF-8 or not JSON: the app says so.
    }
    if (doc && !handed) drawOffer(doc);
  }).catch(() => {});
}

/** What the app reads when it takes over (crates/fota-web/src/handoff.rs). */
globalThis.fotaFirst = Object.freeze({
  /** The connection form as the user left it. */
  settings: () => (handed ? undefined : { ...settings }),
  /** The app has drawn its first screen: this one goes, the keyboard focus moves to the
   *  same control in the app, and a Connect clicked here comes back to be carried out. */
  handOver() {
    if (handed) return undefined;
    handed = true;
    const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]';
    const focused = document.activeElement;
    // Cancel and the download's line are the first screen's own: the app puts the focus
    // on its next step itself.
    const at = focused === cancel ? -1 : [...first.querySelectorAll(FOCUSABLE)].indexOf(focused);
    const caret = focused?.id === 'ws-url' ? [focused.selectionStart, focused.selectionEnd] : null;
    const scroll = [window.scrollX, window.scrollY];
    first.remove();
    // The app's root, hidden until now: never both screens at once.
    const root = document.getElementById('app-root');
    if (root) root.hidden = false;
    const app = document.querySelector('.app');
    if (at >= 0 && app) {
      const same = app.querySelectorAll(FOCUSABLE)[at];
      same?.focus({ preventScroll: true });
      if (caret && same?.setSelectionRange) same.setSelectionRange(...caret);
    }
    window.scrollTo(...scroll);
    const out = { ...(asked ?? { connect: false, port: null }), settings: { ...settings } };
    asked = null;
    return out;
  },
  /** The first screen's download of the manifest at `url`: its bytes once read, else
   *  the response still to come (an error included). Once. */
  manifestFetch(url) {
    if (!manifest || manifest.url !== url || manifest.taken) return undefined;
    manifest.taken = true;
    return manifest.bytes ?? manifest.response;
  },
});

draw();
// The first screen is usable: the tests measure up to here.
performance.mark('fota-ready');
document.documentElement.dataset.ready = '1';

// ---------------------------------------------------------------------------------
// The app, loaded right away (usually ready before the first click).

/** The WebAssembly as a Response whose body counts what has arrived (decoded bytes, of
 *  the build's size: with a compressed transfer, Content-Length counts other bytes). */
async function fetchCounted(wasmUrl) {
  const res = await fetch(wasmUrl);
  if (!res.ok || !res.body) return res;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) {
      wasmBytes.got += chunk.byteLength;
      drawProgress();
      out.enqueue(chunk);
    },
  }));
  return new Response(counted, { headers: { 'Content-Type': 'application/wasm' } });
}

let appLoading = null;
function loadApp() {
  appLoading ??= (async () => {
    wasmBytes.got = 0;
    const glue = await import(url('fotaJs'));
    await glue.default({ module_or_path: fetchCounted(url('fotaWasm')) });
    // Works offline after this visit: the service worker keeps the page's files.
    if ('serviceWorker' in navigator && window.isSecureContext) {
      navigator.serviceWorker.register('sw.js').catch((e) => console.warn(`offline copy not set up: ${e}`));
    }
  })().catch((e) => {
    // Tried again at the next Connect (back online).
    appLoading = null;
    loadError = String(e?.message ?? e);
    asked = null;
    if (!handed) draw();
    console.warn(`the app could not be loaded: ${loadError}`);
  });
  return appLoading;
}
loadApp();
