// Starts the web app: loads the wasm-bindgen glue and the WebAssembly Trunk built, whose
// hashed names Trunk writes on this script's data attributes (Trunk.toml, pattern_script).
// A file of its own rather than an inline script, so that the page's
// Content-Security-Policy allows scripts from the page's own files only.
//
// The loading screen counts what has arrived, and the offline copy (sw.js) is set up
// once the app runs.
const me = document.querySelector('script[data-fota-js]');
const boot = document.getElementById('boot');

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
