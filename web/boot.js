// Starts the web app: loads the wasm-bindgen glue and the WebAssembly Trunk built, whose
// hashed names Trunk writes on this script's data attributes (Trunk.toml, pattern_script).
// A file of its own rather than an inline script, so that the page's
// Content-Security-Policy allows scripts from the page's own files only.
const me = document.querySelector('script[data-fota-js]');
try {
  const glue = await import(me.dataset.fotaJs);
  await glue.default({ module_or_path: me.dataset.fotaWasm });
} catch (e) {
  const boot = document.getElementById('boot');
  if (boot) {
    boot.textContent = `The FOTA web updater could not start (${e}). It needs a current browser with WebAssembly: Chrome, Edge, Opera, Firefox or Safari.`;
  }
  throw e;
}
