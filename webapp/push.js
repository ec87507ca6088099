// Web Push for the authenticator: the browser's push subscription, made with the MC's VAPID key, is what
// the app hands the MC as its push token (docs/app-protocol.md, mailbox.register with push_provider
// "webpush"). A push is only a wake-up naming a message in the mailbox (sw.js shows it and tells the open
// app); the request itself is always pulled from the MC and opened with the account's keys.
//
// Everything here is best effort: a browser without push, a person who declines notifications, a push
// service that cannot be reached (a phone offline, a browser without its vendor's push service) all leave
// the app on pull, which works without any of this.

// Chromium waits on its push service without a deadline; set-up must not hang on it.
const SUBSCRIBE_TIMEOUT_MS = 10000;
// What the MC names a message by (authserver/mc): anything else in a link or a push is ignored.
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function pushAvailable(scope = globalThis) {
  return Boolean(scope.isSecureContext && scope.navigator && 'serviceWorker' in scope.navigator
    && 'PushManager' in scope && 'Notification' in scope);
}

/**
 * Ask for notifications while the person's tap still counts as one (some browsers ask only then), before
 * any network round trip: "granted", or why not.
 */
export async function askToNotify(scope = globalThis) {
  if (!pushAvailable(scope)) return 'unavailable';
  if (scope.Notification.permission !== 'default') return scope.Notification.permission;
  try {
    return await scope.Notification.requestPermission();
  } catch (_) {
    return 'denied';
  }
}

function bytesFromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The subscription as the MC takes it (PushSubscription.toJSON() as JSON text), or null when this browser
 * cannot push to the app. `vapidKey` is the MC's key, base64url, asked of the pinned MC (SDK webpushKey()).
 */
export async function subscribe(vapidKey, scope = globalThis) {
  if (!pushAvailable(scope) || scope.Notification.permission !== 'granted') return null;
  try {
    const registration = await withDeadline(scope.navigator.serviceWorker.ready, SUBSCRIBE_TIMEOUT_MS,
      'the service worker');
    const key = bytesFromBase64url(vapidKey);
    const existing = await registration.pushManager.getSubscription();
    // A subscription made for another key (an MC with a new VAPID key) would refuse every push.
    if (existing) await existing.unsubscribe();
    const subscription = await withDeadline(
      registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
      SUBSCRIBE_TIMEOUT_MS, 'the browser\'s push service');
    return JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription);
  } catch (err) {
    console.warn('no Web Push, the app pulls instead:', err);
    return null;
  }
}

/** The message id a push or a notification's link names, or null for anything else. */
export function messageId(value) {
  return typeof value === 'string' && MESSAGE_ID.test(value) ? value : null;
}

/** Close the notifications that brought the person here: the request is on screen now. */
export async function clearNotifications(scope = globalThis) {
  if (!pushAvailable(scope)) return;
  try {
    const registration = await scope.navigator.serviceWorker.getRegistration();
    if (!registration) return;
    for (const shown of await registration.getNotifications({ tag: 'nextauth-request' })) shown.close();
  } catch (_) {
    // Nothing to close, or no worker: the notification goes away when tapped anyway.
  }
}
