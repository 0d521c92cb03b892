// The offline copy of the web app. Trunk gives every built file a hashed name, so a file
// once fetched never changes: those come from the cache first. The page itself
// (index.html, which names the current files) comes from the network first, and from the
// cache when offline. Installing fetches the page and every file it names, so the app
// works offline after the first visit, before any reload.
const CACHE = 'fota-web-v1';

/** The same-origin files the page names (its scripts, the wasm, the stylesheet, the icon). */
function named(html) {
  const files = new Set(['./boot.js']);
  // Trunk's minified page leaves simple attribute values unquoted.
  for (const m of html.matchAll(/(?:href|src|data-fota-js|data-fota-wasm)=(?:"([^"]+)"|([^\s>"]+))/g)) {
    const file = m[1] || m[2];
    if (!/^[a-z]+:/i.test(file)) files.add(`./${file.replace(/^\.?\//, '')}`);
  }
  return [...files];
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const page = await fetch('./', { cache: 'no-cache' });
    const html = await page.clone().text();
    await cache.put('./', page);
    await cache.addAll(named(html));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  // A firmware manifest and its images (the app fetches them with cache: 'no-store'):
  // always from the network, or a kept copy would hide a new release.
  if (req.cache === 'no-store') return;
  // Other pages of the site (the example vendor page): not the app, not kept.
  if (req.mode === 'navigate' && url.pathname !== new URL(self.registration.scope).pathname) return;
  if (req.mode === 'navigate') {
    // The page: fresh when online (new builds), the kept copy when not.
    event.respondWith((async () => {
      try {
        const fresh = await fetch(req);
        if (fresh.ok) {
          const cache = await caches.open(CACHE);
          await cache.put('./', fresh.clone());
        }
        return fresh;
      } catch {
        return (await caches.match('./')) || Response.error();
      }
    })());
    return;
  }
  event.respondWith((async () => {
    const kept = await caches.match(req);
    if (kept) return kept;
    const fresh = await fetch(req);
    if (fresh.ok) {
      const cache = await caches.open(CACHE);
      await cache.put(req, fresh.clone());
    }
    return fresh;
  })());
});
