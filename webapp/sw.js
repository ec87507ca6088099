// The authenticator's service worker: the app's own files from a cache (offline first), and Web Push.
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
  'push.js',
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

// -- Web Push: a wake-up from the MC ---------------------------------------------------------------------
//
// The push (decrypted by the browser, RFC 8291) holds only {"mailbox", "message"}: which request to pull,
// never who asks or for what. So the notification says only that a request waits; the app pulls it from
// the MC and shows it with the account's keys. A push whose data is not that is shown the same way: the
// browser requires a notification for every push (userVisibleOnly), and the app then simply pulls.

const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TAG = 'nextauth-request';

function pushedMessage(event) {
  try {
    const wake = event.data ? event.data.json() : {};
    return typeof wake.message === 'string' && MESSAGE_ID.test(wake.message) ? wake.message : '';
  } catch (_) {
    return '';
  }
}

async function appWindows() {
  return self.clients.matchAll({ type: 'window', includeUncontrolled: true });
}

self.addEventListener('push', (event) => {
  const message = pushedMessage(event);
  event.waitUntil((async () => {
    await self.registration.showNotification('nextAuth: a request is waiting', {
      body: 'Open it to see who asks, and approve or decline.',
      tag: TAG, // a newer request replaces an older notification
      renotify: true,
      requireInteraction: true,
      icon: 'icons/icon-192.png',
      data: { message },
    });
    // An open app shows the request at once and closes the notification, which is for a phone in a
    // pocket: told only once the notification is up, so the app's close cannot come before it.
    for (const client of await appWindows()) client.postMessage({ type: 'push', message });
  })());
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const message = typeof data.message === 'string' && MESSAGE_ID.test(data.message) ? data.message : '';
  event.waitUntil((async () => {
    const open = (await appWindows()).find((client) => client.url.startsWith(self.registration.scope));
    if (open) {
      open.postMessage({ type: 'push', message });
      await open.focus();
      return;
    }
    // The app's start reads #push=<id>, pulls the mailbox and opens that request.
    await self.clients.openWindow(new URL('./#push=' + message, self.registration.scope).href);
  })());
});
