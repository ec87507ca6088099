// The protocol side of the web authenticator: the JavaScript Mobile SDK (vendored from mobilesdk-js/ by
// tools/vendor_webapp_sdk.py) over the IndexedDB store, with the one thing a screen needs that a command
// line does not: the person decides *after* seeing who asks. The SDK's flows run to the end in one call;
// here they stop where the SDK would use the PIN, show the request (who asks, from where, the fields to
// sign), and go on with the person's answer on the same channel.

import { App, FlowError, RemoteError, WebCryptoKeyring, contextLines, decodeQR } from './vendor/mobilesdk/index.js';
import { visualHash } from './visualhash.js';
import { subscribe } from './push.js';

export { FlowError, RemoteError };

/** The SDK's App, with the person's decision asked for inside a login or a signing flow. */
class WebApp extends App {
  constructor(store, options) {
    super(store, options);
    this.ask = null; // (what to show) => Promise<{approve, pin, number}>, for the flow under way
    this.decidedPin = undefined; // the PIN typed on the review screen, for the SDK's attest()
  }

  // The SDK calls this once ns has started the login (login.start answered): the moment to show it.
  async finishLogin(ns, record, identity, payload, started, options) {
    if (!this.ask) return super.finishLogin(ns, record, identity, payload, started, options);
    const decision = await this.ask({
      kind: 'login',
      server: (started.server && started.server.name) || record.server_name,
      userid: record.user_id,
      requester: started.requester || {},
      requested_at: started.requested_at,
      context: started.context || null,
      shows: started.context ? contextLines(started.context) : [],
      secondFactor: started.second_factor || 'required',
      numbers: options.numbers || [],
    });
    return super.finishLogin(ns, record, identity, payload, started, {
      pin: decision.pin,
      approve: decision.approve,
      number: decision.number ?? options.number,
    });
  }

  // A signing flow shows the fields through `review`; the PIN typed there reaches attest() below.
  async sign(payload, options) {
    if (!this.ask) return super.sign(payload, options);
    const ask = this.ask;
    const review = async (fields) => {
      const decision = await ask({ kind: 'sign', server: payload.serverName || payload.serverId, fields });
      this.decidedPin = decision.pin;
      return decision.approve;
    };
    try {
      return await super.sign(payload, { ...options, approve: true, review });
    } finally {
      this.decidedPin = undefined;
    }
  }

  async attest(request) {
    if (this.decidedPin !== undefined) return super.attest({ ...request, pin: this.decidedPin });
    return super.attest(request);
  }
}

/**
 * Run an SDK flow that will stop to ask the person. Resolves with the request to show (with approve() and
 * decline(), each resolving with the flow's result), or rejects if the flow fails before it asks.
 */
function untilAsked(app, run) {
  return new Promise((resolve, reject) => {
    let asked = false;
    app.ask = (shown) => new Promise((decide) => {
      asked = true;
      app.ask = null; // one question per flow
      resolve({
        ...shown,
        approve: ({ pin, number } = {}) => { decide({ approve: true, pin, number }); return flow; },
        decline: () => { decide({ approve: false }); return flow; },
      });
    });
    const flow = run();
    flow.catch((error) => {
      app.ask = null;
      if (!asked) reject(error);
    });
  });
}

/** What app.js calls; see there for the screens. */
export async function createProtocol({ storage, config }) {
  // The device and account keys as non-extractable CryptoKeys where WebCrypto can make them (not on a page
  // over plain http, which has no crypto.subtle: there the SDK keeps them in the store as bytes).
  const keyring = new WebCryptoKeyring(storage);
  const app = new WebApp(storage, { timeout: 15, WebSocket: globalThis.WebSocket, keyring });
  // Best effort: a request left in the mailbox only lists until it expires.
  const done = (item, outcome) => app.ack([item.id]).catch((err) => console.warn('not removed:', err))
    .then(() => outcome);

  return {
    async registered() {
      return (await app.lockStatus()).registered;
    },

    async lockStatus() {
      return app.lockStatus();
    },

    /**
     * Create the device key, pin the SFS and MC of config.json, register the PIN and a mailbox. With
     * `push` (notifications allowed), the mailbox gets this browser's Web Push subscription, made with the
     * VAPID key the pinned MC names; without one (no push here, or the MC pushes no Web Push) the app
     * pulls its mailbox instead.
     */
    async register(pin, { push = false } = {}) {
      if (!config || !config.sfs) throw new FlowError('The authenticator has no settings: reload it online.');
      await app.init({ sfs: config.sfs, ...(config.mc ? { mc: config.mc } : {}) });
      let token = null;
      if (push && config.mc) {
        const key = await app.webpushKey().catch((err) => {
          console.warn('the message center offers no Web Push:', err);
          return null;
        });
        if (key) token = await subscribe(key);
      }
      const answer = await app.register(pin, token ? { pushProvider: 'webpush', pushToken: token }
        : { pushProvider: 'none' });
      return { ...answer, push: Boolean(token) };
    },

    async accounts() {
      return app.accounts();
    },

    /** Subscribe to Web Push now (notifications allowed after set-up, or a subscription the MC dropped). */
    async turnOnPush() {
      const token = await subscribe(await app.webpushKey());
      if (!token) return false;
      await app.setPush('webpush', token);
      return true;
    },

    /** Enrols; the answer adds the visual hash of the key the server proved, to compare with the page. */
    async enrol(text, pin) {
      const enrolled = await app.enrol(decodeQR(text), { pin });
      const account = (await app.accounts()).find((a) => a.id === String(enrolled.account));
      if (account && account.server_public_key) enrolled.visual_hash = visualHash(account.server_public_key);
      return enrolled;
    },

    async startLogin(text) {
      const payload = decodeQR(text);
      return untilAsked(app, () => app.login(payload, { pin: null }));
    },

    async startSign(text) {
      const payload = decodeQR(text);
      return untilAsked(app, () => app.sign(payload, { pin: null }));
    },

    async inbox() {
      return app.inbox();
    },

    /**
     * A request from the inbox: its envelope already says who asks, so the screen shows that first. Once
     * answered it leaves the mailbox (ns used it up whatever the answer), unless the MC was not reached.
     */
    async startPush(item) {
      const answered = (flow) => flow.then(
        (outcome) => done(item, outcome),
        (err) => (err && ['ChannelError', 'ProtocolError'].includes(err.name) ? Promise.reject(err)
          : done(item).then(() => Promise.reject(err))),
      );
      if (item.type === 'sign') {
        const request = await untilAsked(app, () => app.approve(item.id, { pin: null }));
        return { ...request, approve: (d) => answered(request.approve(d)), decline: () => answered(request.decline()) };
      }
      return {
        kind: 'login',
        server: item.server_name || item.server_id,
        userid: item.userid,
        requester: item.requester || {},
        requested_at: item.requested_at,
        context: item.context || null,
        shows: item.shows || [],
        secondFactor: 'required',
        numbers: item.numbers || [],
        approve: ({ pin, number }) => answered(app.approve(item.id, { pin, number })),
        decline: () => answered(app.approve(item.id, { decline: true })),
      };
    },

    async logout(accountId) {
      return app.logout({ accountId });
    },

    async changePin(oldPin, newPin) {
      return app.changePin(oldPin, newPin);
    },
  };
}
