// The web authenticator's screens. Plain ES modules, no framework, no build step; nothing inline (the
// page's CSP allows scripts from this origin only). The protocol (sigmai, PIN proofs, enrolment, login,
// signing, the MC mailbox) lives in protocol.js over the JavaScript Mobile SDK, loaded when first needed;
// the state lives in storage.js (IndexedDB). This file decides only what the person sees, and when.

import { Storage } from './storage.js';
import { CodeError, readCode } from './codes.js';
import { drawVisualHash } from './visualhash.js';
import { askToNotify, clearNotifications, messageId, pushAvailable } from './push.js';

const PIN_PATTERN = /^[0-9]{4,12}$/;
// The config.json this install was set up with (the SDK keeps the SFS and MC pins; this adds ns's URI),
// so the app still knows its services offline.
const CONFIG_KEY = 'authenticator.config';
const FIELD_LABELS = { amount: 'Amount', beneficiary: 'To', description: 'What for' };

// What an error code means for the person holding the phone (docs/app-protocol.md lists the codes).
const MESSAGES = {
  locked: ['This app is locked', 'Too many wrong PINs. For your safety the app cannot be used any more: '
    + 'remove everything in Settings, set the app up again, and enrol your accounts again.'],
  wrong_pin: ['Wrong PIN', 'The PIN was not right.'],
  expired: ['The code has expired', 'Codes live for a minute. Reload the page that shows the code and try again.'],
  no_login: ['The code has expired', 'This login code was already used or has expired. Reload the login page.'],
  no_enrolment: ['The code has expired', 'This enrolment code was already used or has expired. Ask for a new one.'],
  no_transaction: ['The request has expired', 'This signing request was already answered or has expired.'],
  declined: ['Declined', 'Nothing was approved. The page that asked was told.'],
  blocked: ['This account is blocked', 'Contact your support desk.'],
  unknown_account: ['Unknown account', 'The service does not know this account (any more). Enrol again.'],
  not_yours: ['Not for this account', 'This request is for another account.'],
  already_enrolled: ['Already enrolled', 'This code was used by an enrolment already.'],
  wrong_number: ['Wrong number', 'The number picked was not the one the login page shows. Nothing was approved.'],
  second_factor_device_mismatch: ['Another app enrolled this account',
    'This account was enrolled with another installation of the app. Use that one, or enrol this one.'],
  reenrol_required: ['Enrol again', 'This account must be enrolled again before it can log in.'],
  untrusted_app: ['Not accepted', 'This service does not accept this authenticator.'],
  rate_limited: ['Too many attempts', 'Wait a moment, then try again.'],
  already_registered: ['Already set up', 'This app is set up already.'],
  same_pin: ['Same PIN', 'The new PIN must differ from the current one.'],
  offline: ['No connection', 'The service could not be reached. Check the connection and try again.'],
};

const $ = (id) => document.getElementById(id);
const state = {
  storage: null,
  config: null, // config.json, or the services stored at registration when offline
  protocol: null,
  pending: null, // the login or signing request on screen: approve() or decline() it
  pendingCode: null, // a code that arrived (link or paste) before the app was set up
  history: [],
};

// -- screens ------------------------------------------------------------------------------------------

function show(name, { remember = true } = {}) {
  const current = document.querySelector('section[data-screen]:not([hidden])');
  if (remember && current && current.dataset.screen !== name) state.history.push(current.dataset.screen);
  for (const section of document.querySelectorAll('section[data-screen]')) {
    section.hidden = section.dataset.screen !== name;
  }
  $('to-settings').hidden = !['accounts', 'inbox'].includes(name);
  const first = document.querySelector(`section[data-screen="${name}"] input, section[data-screen="${name}"] h1`);
  if (first && first.tagName === 'INPUT') first.focus();
}

function notice(text, kind = 'error') {
  const box = $('notice');
  box.textContent = text || '';
  box.className = 'notice' + (kind === 'ok' ? ' ok' : '');
  box.hidden = !text;
}

function result(title, text) {
  $('result-title').textContent = title;
  $('result-text').textContent = text;
  show('result');
}

/** An error from the SDK or the app, as the person should read it. */
function explain(err) {
  const code = err && (err.code || (err.name === 'CodeError' ? 'code' : null));
  if (err instanceof CodeError) return ['Not a usable code', err.message];
  if (code && MESSAGES[code]) {
    const [title, text] = MESSAGES[code];
    const left = code === 'wrong_pin' && /(\d+) attempts? left/.exec(err.remoteMessage || '');
    if (left) return [title, `${text} ${left[1]} attempt${left[1] === '1' ? '' : 's'} left before the app locks.`];
    if (code === 'rate_limited' && err.retryAfter) return [title, `Wait ${err.retryAfter} seconds, then try again.`];
    return [title, text];
  }
  if (err && (err.name === 'ProtocolError' || err.name === 'ChannelError')) return MESSAGES.offline;
  return ['Something went wrong', (err && err.message) || String(err)];
}

function fail(err) {
  // A refusal the person is told about is no fault of the app's; anything else is.
  if (err && (MESSAGES[err.code] || err instanceof CodeError)) console.warn(err);
  else console.error(err);
  const [title, text] = explain(err);
  result(title, text);
}

async function busy(button, work) {
  const form = button && button.form;
  const controls = form ? Array.from(form.elements) : [button].filter(Boolean);
  controls.forEach((c) => { c.disabled = true; });
  notice('');
  try {
    return await work();
  } finally {
    controls.forEach((c) => { c.disabled = false; });
  }
}

async function home() {
  state.history = [];
  state.pending = null;
  const proto = await protocol();
  const accounts = await proto.accounts();
  const lock = await proto.lockStatus();
  if (lock.locked) notice(MESSAGES.locked[1]);
  const list = $('account-list');
  list.replaceChildren();
  for (const account of accounts) {
    const item = document.createElement('li');
    const who = document.createElement('div');
    who.className = 'who';
    const name = document.createElement('strong');
    name.textContent = account.user_id;
    const where = document.createElement('span');
    where.textContent = account.server_name || account.server_id;
    who.append(name, where);
    const logout = document.createElement('button');
    logout.type = 'button';
    logout.className = 'secondary';
    logout.textContent = 'Log out';
    logout.setAttribute('aria-label', `Log out ${account.user_id} at ${where.textContent}`);
    logout.addEventListener('click', () => logOut(account, logout));
    item.append(who, logout);
    list.append(item);
  }
  $('no-accounts').hidden = accounts.length > 0;
  const services = (await state.storage.get('services')) || {};
  $('check-inbox').hidden = !services.mc;
  show('accounts', { remember: false });
}

// -- the protocol, loaded when first needed -----------------------------------------------------------

async function protocol() {
  if (!state.protocol) {
    const module = await import('./protocol.js');
    state.protocol = await module.createProtocol({ storage: state.storage, config: state.config });
  }
  return state.protocol;
}

// -- onboarding: choose a PIN, register with the SFS (and the MC) ------------------------------------

async function register(event) {
  event.preventDefault();
  const form = event.target;
  const pin = form.pin.value;
  if (!PIN_PATTERN.test(pin)) { notice('The PIN must be 4 to 12 digits.'); return; }
  if (pin !== form.again.value) { notice('The two PINs differ. Type the same PIN twice.'); return; }
  // Asked first, while the tap still counts: some browsers ask for notifications only on a tap.
  const notify = await askToNotify();
  let registered;
  await busy(form.querySelector('button[type=submit]'), async () => {
    try {
      registered = await (await protocol()).register(pin, { push: notify === 'granted' });
      await state.storage.set(CONFIG_KEY, state.config);
    } catch (err) {
      if (err && err.code === 'already_registered') {
        // An earlier set-up reached the SFS but not this phone's storage: that device key can never get
        // a PIN again. Nothing usable was stored yet (no PIN secret, so no account), so start anew.
        await state.storage.wipe();
        state.protocol = null;
        notice('An earlier set-up was interrupted. Choose your PIN again to set up this phone anew.');
        return;
      }
      fail(err);
      return;
    }
    form.reset();
    notice('This phone is set up. Scan an enrolment code to add an account.'
      + (registered.push ? '' : ' Requests are not pushed to this browser: open the app to check for them.'), 'ok');
    await afterSetup();
  });
}

async function afterSetup() {
  const code = state.pendingCode;
  state.pendingCode = null;
  await home();
  if (code) await useCode(code);
}

// -- a code: scanned, pasted or linked ----------------------------------------------------------------

async function useCode(text) {
  let code;
  try {
    code = readCode(text);
  } catch (err) {
    fail(err);
    return;
  }
  if (state.config && state.config.ns && !sameService(code.sigmaiUri, state.config.ns.uri)) {
    result('Not for this authenticator', 'This code belongs to another service than the one this authenticator '
      + 'serves. Use the app of that service.');
    return;
  }
  if (code.kind === 'enrol') {
    $('enrol-server').textContent = code.serverName || code.serverId;
    $('enrol-form').dataset.code = code.text;
    show('enrol');
    return;
  }
  const accounts = (await (await protocol()).accounts()).filter((a) => a.server_key_hash === code.serverKeyHash);
  if (accounts.length === 0) {
    result('No account here', 'This app has no account at this service yet: enrol first.');
    return;
  }
  try {
    const proto = await protocol();
    if (code.kind === 'sign') showTransaction(await proto.startSign(code.text));
    else showLogin(await proto.startLogin(code.text));
  } catch (err) {
    fail(err);
  }
}

function sameService(a, b) {
  try {
    const x = new URL(a);
    const y = new URL(b);
    return x.protocol === y.protocol && x.host === y.host && x.pathname.replace(/\/$/, '') === y.pathname.replace(/\/$/, '');
  } catch (_) {
    return false;
  }
}

async function paste(event) {
  event.preventDefault();
  const text = event.target.code.value;
  event.target.reset();
  await useCode(text);
}

// -- scanning with the camera (BarcodeDetector where the browser has it, jsQR elsewhere) ---------------

let scanning = null;

// A reader of QR codes in the video's current frame: the browser's own where it reads QR codes, else the
// vendored jsQR decoder (Firefox, Safari and desktop Chrome have no BarcodeDetector), loaded on first use.
async function qrReader() {
  if ('BarcodeDetector' in window) {
    try {
      if ((await window.BarcodeDetector.getSupportedFormats()).includes('qr_code')) {
        const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
        return async (video) => (await detector.detect(video)).map((code) => String(code.rawValue));
      }
    } catch (_) {
      // No QR support after all: the decoder below reads them.
    }
  }
  const decode = await loadDecoder();
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', { willReadFrequently: true });
  return async (video) => {
    // A phone camera's frame scaled to at most 640 pixels across: enough for a code on a screen, and
    // quick to decode four times a second.
    const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight, 1));
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    if (!width || !height) return [];
    canvas.width = width;
    canvas.height = height;
    context.drawImage(video, 0, 0, width, height);
    const pixels = context.getImageData(0, 0, width, height);
    const found = decode(pixels.data, width, height, { inversionAttempts: 'attemptBoth' });
    return found ? [found.data] : [];
  };
}

function loadDecoder() {
  if (typeof window.jsQR === 'function') return Promise.resolve(window.jsQR);
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = 'vendor/jsqr/jsQR.js';
    script.onload = () =>
      typeof window.jsQR === 'function' ? resolve(window.jsQR) : reject(new Error('no QR decoder'));
    script.onerror = () => reject(new Error('the QR decoder did not load'));
    document.head.appendChild(script);
  });
}

async function startScan() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    notice('This browser cannot use the camera here. Paste the code instead.');
    show('paste');
    return;
  }
  show('scan');
  const status = $('scan-status');
  status.textContent = 'Point the camera at the code.';
  let read;
  let stream;
  try {
    read = await qrReader();
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (_) {
    status.textContent = 'The camera is not available (or was not allowed). Paste the code instead.';
    return;
  }
  const video = $('camera');
  video.srcObject = stream;
  await video.play();
  const run = { stream, stopped: false };
  scanning = run;
  const tick = async () => {
    if (run.stopped) return;
    try {
      const hit = (await read(video)).find((value) => value.includes('NA1.'));
      if (hit) {
        stopScan();
        await useCode(hit);
        return;
      }
    } catch (_) {
      // A frame that could not be read: try the next one.
    }
    setTimeout(tick, 250);
  };
  tick();
}

function stopScan() {
  if (!scanning) return;
  scanning.stopped = true;
  scanning.stream.getTracks().forEach((track) => track.stop());
  $('camera').srcObject = null;
  scanning = null;
}

// -- enrolment: create the account's key, show the six digits -----------------------------------------

async function enrol(event) {
  event.preventDefault();
  const form = event.target;
  const pin = form.pin.value;
  form.reset();
  await busy(form.querySelector('button[type=submit]'), async () => {
    let enrolled;
    try {
      enrolled = await (await protocol()).enrol(form.dataset.code, pin);
    } catch (err) {
      fail(err);
      return;
    }
    $('enrolled-user').textContent = enrolled.userid;
    $('enrolled-server').textContent = enrolled.server;
    $('confirmation-code').textContent = enrolled.confirmation_code;
    $('visual-hash-box').hidden = !enrolled.visual_hash;
    if (enrolled.visual_hash) drawVisualHash($('visual-hash'), enrolled.visual_hash);
    show('enrolled', { remember: false });
  });
}

// -- login approval (QR or push, with number matching) -----------------------------------------------

function formatTime(value) {
  const when = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(when.getTime()) ? '' : when.toLocaleString();
}

/** "Chrome on Android" rather than a user agent string; the whole string stays in the tooltip. */
function describeBrowser(agent) {
  if (!agent) return '';
  const browsers = [[/Edg\//, 'Edge'], [/Firefox\//, 'Firefox'], [/OPR\//, 'Opera'], [/Chrome\//, 'Chrome'],
    [/Safari\//, 'Safari']];
  const systems = [[/Android/, 'Android'], [/iPhone|iPad/, 'iOS'], [/Windows/, 'Windows'], [/Mac OS X/, 'macOS'],
    [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux']];
  const browser = (browsers.find(([pattern]) => pattern.test(agent)) || [null, ''])[1];
  const system = (systems.find(([pattern]) => pattern.test(agent)) || [null, ''])[1];
  if (!browser && !system) return agent.slice(0, 80);
  return [browser || 'A browser', system && `on ${system}`].filter(Boolean).join(' ');
}

function showLogin(request) {
  state.pending = request;
  $('approve-title').textContent = 'Log in?';
  $('approve-server').textContent = request.server;
  $('approve-user').textContent = request.userid;
  const requester = request.requester || {};
  $('approve-browser').textContent = describeBrowser(requester.user_agent) || 'unknown';
  $('approve-browser').title = requester.user_agent || '';
  $('approve-place').textContent = requester.location || requester.ip || 'unknown';
  $('approve-time').textContent = formatTime(request.requested_at) || 'now';
  const context = $('approve-context');
  context.replaceChildren(...(request.shows || []).map((line) => {
    const item = document.createElement('li');
    item.textContent = line;
    return item;
  }));
  const numbers = request.numbers || [];
  const choices = $('number-choices');
  choices.replaceChildren(...numbers.map((number) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'number';
    input.value = String(number);
    input.required = true;
    const text = document.createElement('span');
    text.textContent = String(number);
    label.append(input, text);
    return label;
  }));
  $('numbers').hidden = numbers.length === 0;
  const needsPin = request.secondFactor !== 'none';
  $('approve-pin').hidden = !needsPin;
  $('approve-pin-label').hidden = !needsPin;
  $('approve-pin').required = needsPin;
  show('approve');
}

async function approve(event) {
  event.preventDefault();
  const form = event.target;
  const request = state.pending;
  if (!request) return;
  const pin = form.pin.value;
  const picked = form.querySelector('input[name=number]:checked');
  form.reset();
  await busy(form.querySelector('button[type=submit]'), async () => {
    let answer;
    try {
      answer = await request.approve({ pin, number: picked ? Number(picked.value) : undefined });
    } catch (err) {
      fail(err);
      return;
    } finally {
      state.pending = null;
    }
    if (answer && answer.result === 'declined') result(...MESSAGES.declined);
    else result('Logged in', `You are logged in at ${request.server}. You can go back to the other screen.`);
  });
}

async function decline(button) {
  const request = state.pending;
  state.pending = null;
  if (!request) { await home(); return; }
  await busy(button, async () => {
    try {
      await request.decline();
    } catch (err) {
      fail(err);
      return;
    }
    result(...MESSAGES.declined);
  });
}

// -- transaction review: what you see is what you sign -------------------------------------------------

function showTransaction(request) {
  state.pending = request;
  $('transaction-server').textContent = request.server;
  const fields = $('transaction-fields');
  fields.replaceChildren();
  for (const [name, text] of Object.entries(request.fields || {})) {
    const term = document.createElement('dt');
    term.textContent = FIELD_LABELS[name] || name;
    const value = document.createElement('dd');
    value.textContent = String(text);
    fields.append(term, value);
  }
  show('transaction');
}

async function sign(event) {
  event.preventDefault();
  const form = event.target;
  const request = state.pending;
  if (!request) return;
  const pin = form.pin.value;
  form.reset();
  await busy(form.querySelector('button[type=submit]'), async () => {
    let answer;
    try {
      answer = await request.approve({ pin });
    } catch (err) {
      fail(err);
      return;
    } finally {
      state.pending = null;
    }
    if (answer && answer.result === 'declined') result('Declined', 'Nothing was signed. The service was told.');
    else result('Signed', `You signed for ${request.server}. The service has the signed record.`);
  });
}

// -- push requests from the MC mailbox -----------------------------------------------------------------

async function checkInbox(button) {
  await busy(button, async () => {
    let items;
    try {
      items = await (await protocol()).inbox();
    } catch (err) {
      fail(err);
      return;
    }
    const list = $('inbox-list');
    list.replaceChildren();
    for (const item of items) {
      const entry = document.createElement('li');
      const who = document.createElement('div');
      who.className = 'who';
      const what = document.createElement('strong');
      what.textContent = item.type === 'sign' ? 'Signing request' : 'Login request';
      const where = document.createElement('span');
      where.textContent = `${item.userid} at ${item.server_name || item.server_id}`;
      who.append(what, where);
      const open = document.createElement('button');
      open.type = 'button';
      open.textContent = 'Open';
      open.addEventListener('click', () => busy(open, async () => {
        try {
          const request = await (await protocol()).startPush(item);
          if (item.type === 'sign') showTransaction(request);
          else showLogin(request);
        } catch (err) {
          fail(err);
        }
      }));
      entry.append(who, open);
      list.append(entry);
    }
    $('inbox-empty').hidden = items.length > 0;
    show('inbox');
  });
}

/**
 * A request the MC pushed (the worker's message, or the notification's #push= link): pull the mailbox and
 * show it. A request already on screen is not swept away; the person finds the new one in the inbox.
 */
async function openPushed(id) {
  if (state.pending) {
    notice('Another request arrived: find it under "Check for requests".', 'ok');
    return;
  }
  let items;
  try {
    items = await (await protocol()).inbox();
  } catch (err) {
    fail(err);
    return;
  }
  await clearNotifications();
  const wanted = items.find((item) => item.id === id) || (id ? null : items[items.length - 1]);
  if (!wanted) {
    result('The request has expired', 'It was answered already, or it waited too long. Ask again on the '
      + 'page that sent it.');
    return;
  }
  try {
    const request = await (await protocol()).startPush(wanted);
    if (wanted.type === 'sign') showTransaction(request);
    else showLogin(request);
  } catch (err) {
    fail(err);
  }
}

/** Pull when the app opens (the fallback to push): the button says how many requests wait. */
async function pullOnOpen() {
  const button = $('check-inbox');
  if (button.hidden) return;
  try {
    const waiting = (await (await protocol()).inbox()).length;
    button.textContent = waiting ? `Check for requests (${waiting} waiting)` : 'Check for requests';
  } catch (err) {
    console.warn('could not pull the mailbox:', err);
  }
}

// -- logout, change PIN, reset -------------------------------------------------------------------------

async function logOut(account, button) {
  await busy(button, async () => {
    try {
      const answer = await (await protocol()).logout(account.id);
      notice(answer.ended ? `Logged out of ${answer.ended} session${answer.ended === 1 ? '' : 's'}.`
        : 'No session was open for this account.', 'ok');
    } catch (err) {
      fail(err);
    }
  });
}

async function changePin(event) {
  event.preventDefault();
  const form = event.target;
  const [old, pin, again] = [form.old.value, form.pin.value, form.again.value];
  if (!PIN_PATTERN.test(pin)) { notice('The new PIN must be 4 to 12 digits.'); return; }
  if (pin !== again) { notice('The two new PINs differ.'); return; }
  if (pin === old) { notice(MESSAGES.same_pin[1]); return; }
  form.reset();
  await busy(form.querySelector('button[type=submit]'), async () => {
    try {
      await (await protocol()).changePin(old, pin);
    } catch (err) {
      fail(err);
      return;
    }
    result('PIN changed', 'Use the new PIN from now on.');
  });
}

/** Web Push after set-up: notifications allowed later, or the subscription ended (the MC then pulls). */
async function turnOnPush(button) {
  const allowed = await askToNotify();
  if (allowed !== 'granted') {
    notice('Notifications are not allowed for this app. Allow them in the browser\'s site settings first.');
    return;
  }
  await busy(button, async () => {
    let on;
    try {
      on = await (await protocol()).turnOnPush();
    } catch (err) {
      fail(err);
      return;
    }
    if (on) notice('Requests now arrive as notifications.', 'ok');
    else notice('This browser could not subscribe to notifications. Open the app to check for requests.');
  });
}

async function reset(button) {
  if (!window.confirm('Remove every account and key from this phone? You will have to enrol again.')) return;
  await busy(button, async () => {
    await state.storage.wipe();
    state.protocol = null;
    state.config = await loadConfig();
    notice('Everything was removed from this phone.', 'ok');
    show('welcome', { remember: false });
  });
}

// -- start ---------------------------------------------------------------------------------------------

function missingFeatures() {
  const missing = [];
  if (!window.indexedDB) missing.push('storage (IndexedDB)');
  if (!window.crypto || !window.crypto.getRandomValues) missing.push('a random number generator');
  if (!window.WebSocket) missing.push('WebSocket');
  if (typeof BigInt === 'undefined') missing.push('BigInt');
  return missing;
}

async function loadConfig() {
  try {
    const response = await fetch('config.json', { cache: 'no-store', credentials: 'omit' });
    if (response.ok) return await response.json();
  } catch (_) {
    // Offline: the services stored at registration are what this install uses anyway.
  }
  const stored = await state.storage.get(CONFIG_KEY);
  return stored && stored.sfs ? stored : null;
}

function codeFromLink() {
  const hash = window.location.hash.slice(1);
  if (!/^(?:login|code|push)=/.test(hash)) return null;
  // The code is single use: keep it out of the address bar, the history and a later reload.
  window.history.replaceState(null, '', window.location.pathname);
  return hash;
}

function wire() {
  $('register-form').addEventListener('submit', register);
  $('paste-form').addEventListener('submit', paste);
  $('enrol-form').addEventListener('submit', enrol);
  $('approve-form').addEventListener('submit', approve);
  $('decline-button').addEventListener('click', (e) => decline(e.target));
  $('transaction-form').addEventListener('submit', sign);
  $('transaction-decline').addEventListener('click', (e) => decline(e.target));
  $('changepin-form').addEventListener('submit', changePin);
  $('to-scan').addEventListener('click', startScan);
  $('to-paste').addEventListener('click', () => show('paste'));
  $('scan-to-paste').addEventListener('click', () => { stopScan(); show('paste'); });
  $('check-inbox').addEventListener('click', (e) => checkInbox(e.target));
  $('to-settings').addEventListener('click', () => {
    $('push-on').hidden = !pushAvailable() || !(state.config && state.config.mc);
    show('settings');
  });
  $('push-on').addEventListener('click', (e) => turnOnPush(e.target));
  $('to-change-pin').addEventListener('click', () => {
    $('changepin-text').textContent = 'Your accounts stay; only the PIN changes. A wrong current PIN counts '
      + 'as a wrong PIN.';
    show('changepin');
  });
  $('to-about').addEventListener('click', () => show('about'));
  $('about-link').addEventListener('click', (e) => { e.preventDefault(); show('about'); });
  $('reset-app').addEventListener('click', (e) => reset(e.target));
  for (const button of document.querySelectorAll('[data-home]')) {
    button.addEventListener('click', () => { notice(''); stopScan(); home(); });
  }
  for (const button of document.querySelectorAll('[data-back]')) {
    button.addEventListener('click', async () => {
      notice('');
      stopScan();
      if (state.pending) { await decline(button); return; }
      const previous = state.history.pop();
      if (previous && previous !== 'loading') show(previous, { remember: false });
      else await home();
    });
  }
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', async (event) => {
      if (!event.data || event.data.type !== 'push' || !(await (await protocol()).registered())) return;
      await openPushed(messageId(event.data.message));
    });
  }
  window.addEventListener('hashchange', async () => {
    const code = codeFromLink();
    if (code && (await (await protocol()).registered())) await followLink(code);
    else if (code && !code.startsWith('push=')) state.pendingCode = code;
  });
}

async function start() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: './' }).catch((err) => console.warn('no offline use:', err));
  }
  const missing = missingFeatures();
  if (missing.length) {
    $('unsupported-why').textContent = `This browser lacks ${missing.join(', ')}. Use a current browser.`;
    show('unsupported', { remember: false });
    return;
  }
  wire();
  try {
    state.storage = await Storage.open();
  } catch (err) {
    $('unsupported-why').textContent = `${err.message}. A private window may not keep data: use a normal one.`;
    show('unsupported', { remember: false });
    return;
  }
  state.config = await loadConfig();
  const code = codeFromLink();
  if (!state.config) {
    $('unsupported-why').textContent = 'The authenticator could not load its settings. Connect to the internet '
      + 'and reload.';
    show('unsupported', { remember: false });
    return;
  }
  let registered;
  try {
    registered = await (await protocol()).registered();
  } catch (err) {
    console.error(err);
    $('unsupported-why').textContent = `The authenticator could not start: ${err.message}`;
    show('unsupported', { remember: false });
    return;
  }
  if (!registered) {
    state.pendingCode = code && !code.startsWith('push=') ? code : null;
    if (code) notice('Set up this phone first; the login continues afterwards.');
    show('welcome', { remember: false });
    return;
  }
  await home();
  if (code) await followLink(code);
  else pullOnOpen(); // not awaited: the app is usable while the MC answers
}

/** A link into the app: a code to use, or the request a notification named. */
async function followLink(link) {
  if (link.startsWith('push=')) await openPushed(messageId(decodeURIComponent(link.slice(5))));
  else await useCode(link);
}

document.documentElement.dataset.ready = 'starting';
start().finally(() => { document.documentElement.dataset.ready = 'yes'; });
