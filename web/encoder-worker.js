// The encoder's Web Worker: makes compressed and delta streams with the LZMA encoder of
// the separately loaded module (crates/fota-web-extras), off the page's thread, so that
// encoding a large image never freezes the page. web/boot.js starts it when an update
// first needs it and sends { id, js, wasm, base, image }; it answers { id, out, ms } (the
// stream's bytes, the time the encoder took) or { id, error }.
let ready = null;

self.onmessage = async ({ data }) => {
  const { id, js, wasm, base, image } = data;
  try {
    ready ??= import(js).then(async (m) => {
      await m.default({ module_or_path: wasm });
      return m;
    });
    const m = await ready;
    const t0 = performance.now();
    const out = base ? m.delta(base, image) : m.compress(image);
    self.postMessage({ id, out, ms: performance.now() - t0 }, [out.buffer]);
  } catch (e) {
    self.postMessage({ id, error: String(e?.message ?? e) });
  }
};
