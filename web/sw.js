// The offline copy of the web app. Trunk (and web/extras.mjs) give the built files a
// hashed name, so a hashed file once fetched never changes: those come from the cache
// first. The page itself (index.html, which names the current files) and the few files
// with fixed names (boot.js, the app manifest, its icon) come from the network first,
// and from the cache when offline. Installing fetches the page and every file it names,
// the module loaded only when needed (the simulated device, the encoder) included, so
// the app works offline after the first visit, before any reload. Each time a newer page
// arrives, the files it names that are not kept yet are fetched, and the hashed files of
// earlier builds that it no longer names are dropped.
const CACHE = 'fota-web-v1';

/** A file of a build, named by a hash of its content (`name-0123456789abcdef.ext`). */
const hashed = (path) => /-[0-9a-f]{16}(_bg)?\.[a-z]+$/.test(path);

/** The same-origin files the page names (its scripts, the wasm, the stylesheet, the
 *  icon, the module loaded when needed and the encoder's worker), as absolute URLs. */
function named(html) {
  const files = new Set(['./boot.js']);
  // Trunk's minified page leaves simple attribute values unquoted.
  for (const m of html.matchAll(/(?:href|src|data-fota-[a-z-]+)=(?:"([^"]+)"|([^\s>"]+))/g)) {
    const file = m[1] || m[2];
    // Not other sites' files, nor the page's own anchors (the first screen's skip link).
    if (!/^[a-z]+:/i.test(file) && !file.startsWith('#')) files.add(`./${file.replace(/^\.?\//, '')}`);
  }
  return [...files].map((f) => new URL(f, self.registration.scope).href);
}

/** With the page `html` current: keep every file it names, drop the hashed files of
 *  earlier builds. */
async function refresh(html) {
  const cache = await caches.open(CACHE);
  const want = named(html);
  const kept = new Set((await cache.keys()).map((r) => r.url));
  await Promise.all(want.filter((u) => !kept.has(u)).map(async (u) => {
    try {
      const res = await fetch(u, { cache: 'no-cache' });
      if (res.ok) await cache.put(u, res);
    } catch {
      // Offline again: fetched when used, or at the next visit.
    }
  }));
  const current = new Set(want);
  for (const req of await cache.keys()) {
    if (hashed(new URL(req.url).pathname) && !current.has(req.url)) await cache.delete(req);
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const page = await fetch('./', { cache: 'no-cache' });
    const html = await page.clone().text();
    await cache.put('./', page);
    await cache.addAll(named(html));
    await refresh(html);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

/** From the network, the kept copy updated; the kept copy when offline. */
async function networkFirst(req, key) {
  try {
    const fresh = await fetch(req);
    if (fresh.ok) await (await caches.open(CACHE)).put(key, fresh.clone());
    return fresh;
  } catch {
    return (await caches.match(key)) || Response.error();
  }
}

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
    // The page: fresh when online (new builds), the kept copy when not. A fresh page
    // brings its files into the offline copy and drops those of earlier builds.
    event.respondWith((async () => {
      try {
        const fresh = await fetch(req);
        if (fresh.ok) {
          const cache = await caches.open(CACHE);
          await cache.put('./', fresh.clone());
          event.waitUntil(fresh.clone().text().then(refresh));
        }
        return fresh;
      } catch {
        return (await caches.match('./')) || Response.error();
      }
    })());
    return;
  }
  if (!hashed(url.pathname)) {
    event.respondWith(networkFirst(req, req));
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
