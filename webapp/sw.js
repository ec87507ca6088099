// The authenticator's service worker: the app's own files from a cache (offline first), nothing else.
//
// It answers only for the shell files listed here (tests/test_web_authenticator.py checks the list against
// webapp/): config.json, the login pages and every API pass through to the network untouched and are
// never stored, so a cached answer can never stand in for what a server said. The server writes a hash of
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
  'storage.js',
];
const SHELL_URLS = new Set(SHELL.map((name) => new URL(name, self.registration.scope).href));

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      // cache: 'reload' skips the HTTP cache: the files must be the ones of this version.
      .then((cache) => cache.addAll(SHELL.map((name) => new Request(name, { cache: 'reload' }))))
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
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  // "/app/?x" and "/app/#login=..." are the shell's page too; a hash never reaches the worker anyway.
  const key = url.origin + url.pathname;
  if (!SHELL_URLS.has(key)) return;
  event.respondWith(
    caches.open(CACHE).then((cache) => cache.match(key).then((hit) => hit || fetch(request))),
  );
});
