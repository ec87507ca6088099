// The authenticator's service worker: the app's own files from a cache (offline first), nothing else.
//
// It answers only with the shell files it cached at install (the list below and the vendored SDK;
// tests/idp/test_web_authenticator.py checks the list against webapp/): config.json, the login pages and
// every API pass through to the network untouched and are never stored, so a cached answer can never
// stand in for what a server said. The server writes a hash of
// the shell into SHELL_VERSION, so any change to a file installs a new worker with a new cache.

const SHELL_VERSION = '__SHELL_VERSION__';
const CACHE = 'nextauth-shell-' + SHELL_VERSION;
const SHELL = [
  './',
  'app.css',
  'app.js',
  'codes.js',
  'icons/icon-192.png',
  'icons/icon-512.png',
  'icons/icon.svg',
  'manifest.webmanifest',
  'protocol.js',
  'storage.js',
  'visualhash.js',
];
// The vendored SDK and its @noble modules, as tools/vendor_webapp_sdk.py listed them.
const VENDOR_MANIFEST = 'vendor/MANIFEST.json';
const NEVER = new Set(['config.json']); // asked of the server every time, never kept

async function shellFiles() {
  const response = await fetch(VENDOR_MANIFEST, { cache: 'reload' });
  if (!response.ok) throw new Error(`${VENDOR_MANIFEST}: ${response.status}`);
  const listed = Object.keys((await response.json()).files).filter((name) => name.endsWith('.js'));
  return [...SHELL, ...listed.map((name) => 'vendor/' + name)];
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    Promise.all([caches.open(CACHE), shellFiles()])
      // cache: 'reload' skips the HTTP cache: the files must be the ones of this version.
      .then(([cache, names]) => cache.addAll(names.map((name) => new Request(name, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names
        .filter((name) => name.startsWith('nextauth-shell-') && name !== CACHE)
        .map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const scope = self.registration.scope;
  if (request.method !== 'GET' || !request.url.startsWith(scope)) return;
  const url = new URL(request.url);
  if (NEVER.has(url.pathname.slice(new URL(scope).pathname.length))) return;
  // Only what the install put into the cache is answered from it ("/app/?x" is the page too); anything
  // else goes to the network as if there were no worker, and nothing is added to the cache.
  const key = url.origin + url.pathname;
  event.respondWith(
    caches.open(CACHE).then((cache) => cache.match(key)).then((hit) => hit || fetch(request)),
  );
});
