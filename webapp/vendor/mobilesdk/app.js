// The app's flows, as the Python reference SDK (mobilesdk/flows.py) runs them: register with the SFS
// and the MC, check the second factor and get the SFS's attestation, enrol an account, log in by QR or
// push (with number matching), review and sign a transaction, log out. Each step talks to one service
// over its own sigmai channel; docs/app-protocol.md lists the operations.

import { ed25519, x25519 } from '../noble/curves/ed25519.js';
import { b64url, fromHex, toHex, unb64url, utf8, fromUtf8, equalBytes } from './bytes.js';
import { ChannelError, RemoteError, openChannel, withChannel } from './channel.js';
import { EnvelopeError, openEnvelope } from './envelope.js';
import { jsonEqual, strictParse } from './json.js';
import * as pinProofs from './pin.js';
import { decodeQR } from './qr.js';
import { DeviceIdentity, serverKeyHash } from './sigmai.js';
import {
  ENROL_CODE_EXPORTER,
  LOGIN_EXPORTER,
  PIN_CHANGE_EXPORTER,
  SFS_PROOF_EXPORTER,
  confirmationCode,
  loginStatement,
  pinChangeStatement,
  sfsProofStatement,
  signingStatement,
} from './statements.js';

/** A flow stopped; the message tells the person what to do. */
export class FlowError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'FlowError';
  }
}

/**
 * @typedef {object} ServiceEndpoint
 * @property {string} uri ws:// or wss:// sigmai URI
 * @property {string} key_hash hex SHA-256 of the service's Ed25519 key: the pin
 */

/**
 * @typedef {object} AccountRecord
 * @property {string} id
 * @property {string} server_id
 * @property {string} server_name
 * @property {string} sigmai_uri
 * @property {string} server_key_hash hex, pinned from the enrolment QR
 * @property {string} server_public_key hex, proven against the pin in the enrolment handshake
 * @property {string} user_id
 * @property {StoredKey} key the account key (private, or a keyring's handle to it)
 * @property {string} [encryption_key] base64url X25519 private key for push envelopes
 */

/**
 * A long-term key as the store keeps it: the secret itself (base64url), or, for a key made by a keyring,
 * the keyring's handle (its `keyring` entry) and whatever it adds, never the secret.
 * @typedef {{type: 'p256' | 'ed25519', secret?: string, keyring?: string} & Record<string, unknown>} StoredKey
 */

/**
 * Where long-term keys are made and held when not in the store: a browser's WebCrypto with
 * non-extractable keys, for one. `generate` answers null for a type it cannot hold; the App then makes
 * the key itself.
 * @typedef {object} Keyring
 * @property {(type: 'p256' | 'ed25519') => Promise<{stored: StoredKey, identity: SigningIdentity} | null>} generate
 * @property {(stored: StoredKey) => Promise<SigningIdentity>} load
 */

/**
 * @typedef {import('./channel.js').ChannelOptions & {keyring?: Keyring}} AppOptions
 * @typedef {import('./sigmai.js').SigningIdentity} SigningIdentity
 */

/**
 * @typedef {object} LockStatus
 * @property {boolean} registered
 * @property {boolean} locked the SFS locked this app instance for good (too many wrong PINs)
 * @property {number | null} attempts_left wrong PINs the SFS still allows, as last heard
 * @property {number | null} max_attempts
 */

/** @param {ServiceEndpoint} data @param {string} name @returns {ServiceEndpoint} */
function checkEndpoint(data, name) {
  if (!data || typeof data.uri !== 'string' || !/^wss?:\/\//.test(data.uri)) {
    throw new FlowError(`${name}: uri must start with ws:// or wss://`);
  }
  if (typeof data.key_hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(data.key_hash)) {
    throw new FlowError(`${name}: key_hash must be 64 hex characters (SHA-256)`);
  }
  return { uri: data.uri, key_hash: data.key_hash.toLowerCase() };
}

/**
 * What a phone's screen says of who asks (ns checked each member: one line of plain text).
 * @param {Record<string, any>} context
 * @returns {string[]}
 */
export function contextLines(context) {
  const asker = String(context.client_name || 'An application');
  const lines = [];
  if (context.message) lines.push(`${asker} asks: ${context.message}`);
  else if (context.client_name) lines.push(`${asker} asks you to log in`);
  if (context.user_code) lines.push(`Code on the device: ${context.user_code}`);
  return lines;
}

/** The app on one phone. Its store holds the device key, the SFS and MC pins, and the accounts. */
export class App {
  /**
   * @param {import('./store.js').Store} store
   * @param {AppOptions} [options]
   */
  constructor(store, options = {}) {
    this.store = store;
    this.options = options;
  }

  // -- device and services ----------------------------------------------------------------------------

  /**
   * Create the device key (once) and set the SFS and MC this app uses.
   * @param {{sfs?: ServiceEndpoint, mc?: ServiceEndpoint, keyType?: 'p256' | 'ed25519'}} [config]
   */
  async init(config = {}) {
    const services = (await this.store.get('services')) ?? {};
    for (const name of /** @type {const} */ (['sfs', 'mc'])) {
      if (config[name]) services[name] = checkEndpoint(config[name], name);
    }
    let created = false;
    if (!(await this.store.get('device'))) {
      await this.store.set('device', (await this.newKey(config.keyType ?? 'p256')).stored);
      created = true;
    }
    await this.store.set('services', services);
    const device = await this.device();
    return {
      device_created: created,
      device_thumbprint: device.thumbprint,
      device_key_type: device.type,
      services,
    };
  }

  /** @returns {Promise<SigningIdentity>} */
  async device() {
    const stored = await this.store.get('device');
    if (!stored) throw new FlowError('No device key yet: initialise the app first.');
    return this.loadKey(stored);
  }

  /**
   * A new long-term key (the device key, an account key): made in the keyring where it can hold one of
   * this type (a browser's non-extractable WebCrypto key), else here, its secret kept in the store.
   * @private
   * @param {'p256' | 'ed25519'} type
   * @returns {Promise<{stored: StoredKey, identity: SigningIdentity}>}
   */
  async newKey(type) {
    const made = this.options.keyring ? await this.options.keyring.generate(type) : null;
    if (made) return made;
    const identity = DeviceIdentity.generate(type);
    return { stored: identity.toJSON(), identity };
  }

  /**
   * @private
   * @param {StoredKey} stored what newKey() gave to keep
   * @returns {Promise<SigningIdentity>}
   */
  async loadKey(stored) {
    if (stored.keyring !== undefined) {
      if (!this.options.keyring) throw new FlowError('This key is held in a keyring this app was not given.');
      return this.options.keyring.load(stored);
    }
    return new DeviceIdentity(stored.type, unb64url(String(stored.secret)));
  }

  /** @param {'sfs' | 'mc'} name @returns {Promise<ServiceEndpoint>} */
  async service(name) {
    const services = (await this.store.get('services')) ?? {};
    if (!services[name]) throw new FlowError(`No ${name} configured: initialise the app with one.`);
    return services[name];
  }

  async status() {
    const device = await this.device();
    return {
      device_thumbprint: device.thumbprint,
      device_key_type: device.type,
      services: (await this.store.get('services')) ?? {},
    };
  }

  /**
   * @param {string} uri @param {SigningIdentity} identity @param {string | Uint8Array} keyHash
   */
  channel(uri, identity, keyHash) {
    return openChannel(uri, identity, typeof keyHash === 'string' ? fromHex(keyHash) : keyHash, this.options);
  }

  /** @param {'sfs' | 'mc'} name */
  async serviceChannel(name) {
    const endpoint = await this.service(name);
    return this.channel(endpoint.uri, await this.device(), endpoint.key_hash);
  }

  /**
   * Open a channel to a service (by name or URI and pin) and ask who answered.
   * @param {'sfs' | 'mc' | ServiceEndpoint} target
   */
  async hello(target) {
    const endpoint =
      typeof target === 'string' ? await this.service(target) : checkEndpoint(target, 'target');
    return withChannel(this.channel(endpoint.uri, await this.device(), endpoint.key_hash), async (ch) => ({
      uri: endpoint.uri,
      server_public_key: toHex(ch.serverPublicKey),
      server_key_hash: endpoint.key_hash,
      transcript_hash: toHex(ch.transcriptHash),
      server: await ch.request('hello'),
    }));
  }

  // -- registration with the SFS and the MC -----------------------------------------------------------

  /** @returns {Promise<Record<string, any>>} */
  async secondFactor() {
    return (await this.store.get('secondFactor')) ?? {};
  }

  /**
   * Register this app's PIN (and optionally a biometric key) at the SFS, and a mailbox at the MC.
   * For Web Push, `pushToken` is the browser's subscription (`JSON.stringify(subscription)`), made with
   * the MC's key from webpushKey().
   * @param {string} pin
   * @param {{biometric?: boolean, pushProvider?: 'fcm' | 'apns' | 'webpush' | 'none', pushToken?: string | null}} [options]
   */
  async register(pin, options = {}) {
    if ((await this.secondFactor()).device_secret) throw new FlowError('This app is registered already.');
    let request;
    try {
      request = pinProofs.start(pin);
    } catch (error) {
      throw new FlowError(/** @type {Error} */ (error).message);
    }
    const deviceSecret = pinProofs.newDeviceSecret();
    const biometricKey = options.biometric ? ed25519.utils.randomSecretKey() : null;
    const answer = await withChannel(this.serviceChannel('sfs'), async (sfs) => {
      const started = await sfs.request('register.start', {
        blinded_element: b64url(request.blindedElement),
      });
      const verifier = pinProofs.verifier(pin, request, unb64url(started.evaluated_element), deviceSecret);
      /** @type {Record<string, unknown>} */
      const params = { pin_verifier: b64url(verifier) };
      if (biometricKey) params.biometric_key = b64url(ed25519.getPublicKey(biometricKey));
      return sfs.request('register.finish', params);
    });
    /** @type {Record<string, any>} */
    const secrets = {
      device_secret: b64url(deviceSecret),
      max_attempts: answer.max_attempts ?? null,
      attempts_left: answer.max_attempts ?? null,
      locked: false,
    };
    // A phone keeps the biometric key in secure hardware behind the biometric prompt.
    if (biometricKey) secrets.biometric_key = b64url(biometricKey);
    const services = (await this.store.get('services')) ?? {};
    let mailbox = null;
    if (services.mc) {
      mailbox = await this.registerMailbox(options.pushProvider ?? 'none', options.pushToken ?? null);
      secrets.mailbox = mailbox;
    }
    await this.store.set('secondFactor', secrets);
    return {
      registered: true,
      biometric: Boolean(biometricKey),
      max_attempts: answer.max_attempts ?? null,
      mailbox: mailbox ? mailbox.mailbox : null,
    };
  }

  /**
   * Replace the PIN at the SFS, proving the old one; a wrong old PIN counts as one at login does.
   * The device secret stays and only the SFS's verifier changes, so nothing here is written but the
   * lock status: a lost answer cannot leave the phone and the SFS disagreeing.
   * @param {string} oldPin
   * @param {string} newPin
   * @returns {Promise<{changed: boolean, max_attempts: number | null}>}
   */
  async changePin(oldPin, newPin) {
    const secrets = await this.secondFactor();
    if (!secrets.device_secret) throw new FlowError('Register this app first (a PIN at the SFS).');
    if (String(oldPin).normalize('NFC') === String(newPin).normalize('NFC')) {
      throw new FlowError('The new PIN is the old one; choose another.');
    }
    let oldRequest;
    let newRequest;
    try {
      oldRequest = pinProofs.start(oldPin);
      newRequest = pinProofs.start(newPin);
    } catch (error) {
      throw new FlowError(/** @type {Error} */ (error).message);
    }
    const deviceSecret = unb64url(secrets.device_secret);
    try {
      const answer = await withChannel(this.serviceChannel('sfs'), async (sfs) => {
        const started = await sfs.request('pin.change.start', {
          blinded_element: b64url(oldRequest.blindedElement),
          new_blinded_element: b64url(newRequest.blindedElement),
        });
        await this.noteSecondFactor({ attempts_left: started.attempts_left ?? null });
        const verifier = pinProofs.verifier(
          newPin,
          newRequest,
          unb64url(started.new_evaluated_element),
          deviceSecret,
        );
        const statement = pinChangeStatement({
          sfsChallenge: unb64url(started.challenge),
          channelBinding: sfs.exportKeyingMaterial(PIN_CHANGE_EXPORTER, new Uint8Array(0), 32),
          newPinVerifier: verifier,
        });
        const proof = pinProofs.prove(
          oldPin,
          oldRequest,
          unb64url(started.evaluated_element),
          deviceSecret,
          statement,
        );
        return sfs.request('pin.change.finish', { proof: b64url(proof), pin_verifier: b64url(verifier) });
      });
      await this.noteSecondFactor({ attempts_left: answer.max_attempts ?? secrets.max_attempts ?? null });
      return { changed: Boolean(answer.changed), max_attempts: answer.max_attempts ?? null };
    } catch (error) {
      await this.noteRefusal(error);
      throw error;
    }
  }

  /** @private @param {unknown} error what the SFS said about a PIN, kept for lockStatus() */
  async noteRefusal(error) {
    if (error instanceof RemoteError && error.code === 'locked') {
      await this.noteSecondFactor({ locked: true, attempts_left: 0 });
    } else if (error instanceof RemoteError && error.code === 'wrong_pin') {
      const left = /(\d+) attempts? left/.exec(error.remoteMessage);
      if (left) await this.noteSecondFactor({ attempts_left: Number(left[1]) });
    }
  }

  /**
   * The MC's VAPID public key (base64url, an uncompressed P-256 point): a web app subscribes to Web Push
   * with it as `applicationServerKey`, since the browser's push service takes pushes for the subscription
   * only when they are signed with the key it was made for. Asked over the pinned MC channel, so a
   * network in between cannot hand the app another key.
   * @returns {Promise<string>}
   */
  async webpushKey() {
    const answer = await withChannel(this.serviceChannel('mc'), (ch) => ch.request('webpush.key', {}));
    return String(answer.vapid_public_key);
  }

  /**
   * Change how the MC wakes this app (a new push token, a Web Push subscription made after set-up, or
   * 'none'); the mailbox and the token ns holds for it stay.
   * @param {'fcm' | 'apns' | 'webpush' | 'none'} provider
   * @param {string | null} pushToken for 'webpush', the subscription's JSON
   */
  async setPush(provider, pushToken) {
    const answer = await withChannel(this.serviceChannel('mc'), (ch) =>
      ch.request('mailbox.push', { push_provider: provider, push_token: pushToken }),
    );
    return { mailbox: String(answer.mailbox), push_provider: String(answer.push_provider) };
  }

  /** @param {string} provider @param {string | null} pushToken */
  async registerMailbox(provider, pushToken) {
    const mc = await this.service('mc');
    const answer = await withChannel(this.serviceChannel('mc'), (ch) =>
      ch.request('mailbox.register', { push_provider: provider, push_token: pushToken }),
    );
    return { key_hash: mc.key_hash, mailbox: String(answer.mailbox), token: String(answer.token) };
  }

  /**
   * What the app last heard from the SFS about its PIN: attempts left, or locked for good.
   * @returns {Promise<LockStatus>}
   */
  async lockStatus() {
    const secrets = await this.secondFactor();
    return {
      registered: Boolean(secrets.device_secret),
      locked: Boolean(secrets.locked),
      attempts_left: secrets.attempts_left ?? null,
      max_attempts: secrets.max_attempts ?? null,
    };
  }

  /** @private @param {Record<string, any>} changes */
  async noteSecondFactor(changes) {
    const secrets = await this.secondFactor();
    if (!secrets.device_secret) return;
    await this.store.set('secondFactor', { ...secrets, ...changes });
  }

  /**
   * Check the second factor at the SFS and get its attestation for ns.
   * @param {{pin?: string | null, audience: string, nsChallenge: Uint8Array, purpose: 'login' | 'sign' | 'enrol',
   *   account: SigningIdentity}} request `pin` null or absent: the biometric
   * @returns {Promise<string>} the attestation (a JWS)
   */
  async attest({ pin, audience, nsChallenge, purpose, account }) {
    const secrets = await this.secondFactor();
    if (!secrets.device_secret) throw new FlowError('Register this app first (a PIN at the SFS).');
    const accountThumbprint = account.thumbprint;
    try {
      const token = await withChannel(this.serviceChannel('sfs'), async (sfs) => {
        /** @param {Uint8Array} sfsChallenge */
        const statement = (sfsChallenge) =>
          sfsProofStatement({
            sfsChallenge,
            channelBinding: sfs.exportKeyingMaterial(SFS_PROOF_EXPORTER, new Uint8Array(0), 32),
            audience,
            nsChallenge,
            purpose,
            accountThumbprint,
          });
        let method;
        let proof;
        if (pin === null || pin === undefined) {
          if (!secrets.biometric_key) throw new FlowError('Give the PIN: no biometric is set up.');
          const challenge = unb64url((await sfs.request('biometric.challenge')).challenge);
          proof = ed25519.sign(
            new Uint8Array([...pinProofs.PROOF_CONTEXT, ...statement(challenge)]),
            unb64url(secrets.biometric_key),
          );
          method = 'biometric';
        } else {
          let request;
          try {
            request = pinProofs.start(pin);
          } catch (error) {
            throw new FlowError(/** @type {Error} */ (error).message);
          }
          const answer = await sfs.request('pin.evaluate', {
            blinded_element: b64url(request.blindedElement),
          });
          await this.noteSecondFactor({ attempts_left: answer.attempts_left ?? null });
          proof = pinProofs.prove(
            pin,
            request,
            unb64url(answer.evaluated_element),
            unb64url(secrets.device_secret),
            statement(unb64url(answer.challenge)),
          );
          method = 'pin';
        }
        const attested = await sfs.request('attest', {
          method,
          purpose,
          audience,
          account_thumbprint: accountThumbprint,
          ns_challenge: b64url(nsChallenge),
          proof: b64url(proof),
        });
        if (method === 'pin') await this.noteSecondFactor({ attempts_left: secrets.max_attempts ?? null });
        return String(attested.attestation);
      });
      return token;
    } catch (error) {
      await this.noteRefusal(error);
      throw error;
    }
  }

  // -- accounts ---------------------------------------------------------------------------------------

  /** @returns {Promise<AccountRecord[]>} */
  async accountRecords() {
    return (await this.store.get('accounts')) ?? [];
  }

  /** The accounts without their private keys. */
  async accounts() {
    return (await this.accountRecords()).map(({ key: _key, encryption_key: _enc, ...shown }) => shown);
  }

  /** @param {Uint8Array} keyHash */
  async accountsAt(keyHash) {
    const hex = toHex(keyHash);
    return (await this.accountRecords()).filter((a) => a.server_key_hash === hex);
  }

  /** @param {AccountRecord} record @returns {Promise<SigningIdentity>} */
  accountKey(record) {
    return this.loadKey(record.key);
  }

  /** @param {AccountRecord} record */
  async addAccount(record) {
    const accounts = (await this.accountRecords()).filter((a) => a.id !== record.id);
    await this.store.set('accounts', [...accounts, record]);
  }

  // -- scanning a code --------------------------------------------------------------------------------

  /**
   * What the camera saw: an enrolment, a login or a signing request.
   * @param {string} text the QR payload or an app link
   * @param {{pin?: string | null, approve?: boolean, accountId?: string | null}} [options]
   */
  async scan(text, options = {}) {
    let payload;
    try {
      payload = decodeQR(text);
    } catch (error) {
      throw new FlowError(/** @type {Error} */ (error).message);
    }
    const approve = options.approve ?? true;
    if (payload.kind === 'enrol') return this.enrol(payload, { pin: options.pin });
    if (payload.kind === 'sign')
      return this.sign(payload, { pin: options.pin, approve, accountId: options.accountId });
    return this.login(payload, { pin: options.pin, approve, accountId: options.accountId });
  }

  /**
   * Enrol a new account with the code from the QR; ns's key is pinned from the QR's hash.
   * @param {import('./qr.js').QRPayload} payload
   * @param {{pin?: string | null}} options
   */
  async enrol(payload, { pin }) {
    const sfs = await this.service('sfs');
    const { stored: storedKey, identity } = await this.newKey('p256');
    const encryptionKey = x25519.utils.randomSecretKey();
    /** @type {Record<string, unknown>} */
    const params = { enrolment: payload.itemId, secret: b64url(payload.secret), sfs_key_hash: sfs.key_hash };
    const mailbox = (await this.secondFactor()).mailbox;
    if (mailbox) {
      params.mc = mailbox;
      params.encryption_key = b64url(x25519.getPublicKey(encryptionKey));
    }
    const done = await withChannel(
      this.channel(payload.sigmaiUri, identity, payload.serverKeyHash),
      async (ns) => {
        const started = await ns.request('enrol.start', params);
        const token = await this.attest({
          pin,
          audience: started.audience,
          nsChallenge: unb64url(started.ns_challenge),
          purpose: 'enrol',
          account: identity,
        });
        const finished = await ns.request('enrol.finish', { attestation: token });
        const ownCode = confirmationCode(
          ns.exportKeyingMaterial(ENROL_CODE_EXPORTER, utf8(payload.itemId), 8),
        );
        return { started, finished, ownCode, serverPublicKey: ns.serverPublicKey };
      },
    );
    const { started, finished, ownCode } = done;
    if (finished.confirmation_code !== ownCode) {
      throw new FlowError("The server's confirmation code differs from this phone's: do not confirm.");
    }
    if (!equalBytes(serverKeyHash(done.serverPublicKey), payload.serverKeyHash)) {
      throw new FlowError('The server is not the one the code named.'); // the handshake already ensures it
    }
    const server = started.server;
    await this.addAccount({
      id: String(finished.account),
      server_id: String(server.id),
      server_name: String(server.name),
      sigmai_uri: payload.sigmaiUri,
      server_key_hash: toHex(payload.serverKeyHash),
      server_public_key: toHex(done.serverPublicKey),
      user_id: String(started.userid),
      key: storedKey,
      encryption_key: b64url(encryptionKey),
    });
    return {
      action: 'enrol',
      server: server.name,
      userid: started.userid,
      account: finished.account,
      confirmation_code: ownCode,
      next: 'type this code into the application to finish the enrolment',
    };
  }

  /**
   * Log in (QR or push). The newest usable account at that server unless `accountId` says which.
   * @param {import('./qr.js').QRPayload} payload
   * @param {{pin?: string | null, approve?: boolean, accountId?: string | null, number?: number | null}} options
   */
  async login(payload, { pin, approve = true, accountId = null, number = null }) {
    let candidates = await this.accountsAt(payload.serverKeyHash);
    if (accountId) candidates = candidates.filter((a) => a.id === accountId);
    if (candidates.length === 0) throw new FlowError('This app has no account at this service: enrol first.');
    // An enrolment that was never confirmed leaves an account the server does not know: skipped.
    for (const record of [...candidates].reverse()) {
      const identity = await this.accountKey(record);
      const ns = await this.channel(record.sigmai_uri, identity, record.server_key_hash);
      try {
        let started;
        try {
          started = await ns.request('login.start', {
            qr_id: payload.itemId,
            challenge: b64url(payload.secret),
          });
        } catch (error) {
          if (error instanceof RemoteError && error.code === 'unknown_account' && record !== candidates[0])
            continue;
          throw error;
        }
        return await this.finishLogin(ns, record, identity, payload, started, { pin, approve, number });
      } finally {
        ns.close();
      }
    }
    throw new FlowError('This app has no account at this service: enrol first.');
  }

  /**
   * @private
   * @param {import('./channel.js').Channel} ns
   * @param {AccountRecord} record
   * @param {SigningIdentity} identity
   * @param {import('./qr.js').QRPayload} payload
   * @param {Record<string, any>} started
   * @param {{pin?: string | null, approve: boolean, number: number | null}} options
   */
  async finishLogin(ns, record, identity, payload, started, { pin, approve, number }) {
    /** @type {Record<string, any>} */
    const shown = {
      action: 'login',
      server: started.server?.name,
      announce: started.server?.announce ?? {},
      requester: started.requester ?? {},
      userid: record.user_id,
      account: record.id,
    };
    if (started.context) {
      shown.context = started.context;
      shown.shows = contextLines(started.context);
    }
    if (!approve) {
      await ns.request('login.cancel', { reason: 'declined' });
      return { ...shown, result: 'declined' };
    }
    const nsChallenge = unb64url(started.ns_challenge);
    /** @type {Record<string, unknown>} */
    const params = {};
    if (started.second_factor === 'required') {
      try {
        params.attestation = await this.attest({
          pin,
          audience: started.audience,
          nsChallenge,
          purpose: 'login',
          account: identity,
        });
      } catch (error) {
        // The login page should say why nothing happens: a wrong PIN, or an app locked by them.
        if (error instanceof RemoteError && (error.code === 'locked' || error.code === 'wrong_pin')) {
          await ns.request('login.cancel', { reason: error.code });
        }
        throw error;
      }
    }
    const statement = loginStatement(
      payload.itemId,
      payload.secret,
      nsChallenge,
      ns.exportKeyingMaterial(LOGIN_EXPORTER, new Uint8Array(0), 32),
    );
    params.signature = b64url(await identity.sign(statement));
    if (number !== null && number !== undefined) params.number = number;
    const finished = await ns.request('login.finish', params);
    return { ...shown, result: 'logged_in', session: finished.session ?? null };
  }

  /**
   * Show the typed fields, then sign exactly the canonical bytes ns fixed, with the decision.
   * @param {import('./qr.js').QRPayload} payload
   * @param {{pin?: string | null, approve?: boolean, accountId?: string | null,
   *   review?: (fields: Record<string, string>) => boolean | Promise<boolean>}} options
   *   `review` sees the fields before anything is signed and may still decline
   */
  async sign(payload, { pin, approve = true, accountId = null, review }) {
    let candidates = await this.accountsAt(payload.serverKeyHash);
    if (accountId) candidates = candidates.filter((a) => a.id === accountId);
    if (candidates.length === 0) throw new FlowError('This app has no account at this service.');
    let lastError = null;
    for (const record of candidates) {
      const identity = await this.accountKey(record);
      const ns = await this.channel(record.sigmai_uri, identity, record.server_key_hash);
      try {
        let started;
        try {
          started = await ns.request('sign.start', {
            transaction: payload.itemId,
            challenge: b64url(payload.secret),
          });
        } catch (error) {
          lastError = error;
          if (error instanceof RemoteError && ['not_yours', 'unknown_account'].includes(error.code)) continue;
          throw error;
        }
        const canonical = unb64url(started.canonical);
        let decoded;
        try {
          decoded = strictParse(fromUtf8(canonical));
        } catch {
          decoded = undefined;
        }
        if (!jsonEqual(decoded, started.content)) {
          throw new FlowError('The server sent content that differs from what it asks to sign.');
        }
        let approved = approve;
        if (approved && review) approved = Boolean(await review(started.content.fields));
        const decision = approved ? 'approved' : 'declined';
        const nsChallenge = unb64url(started.ns_challenge);
        /** @type {Record<string, unknown>} */
        const params = {
          decision,
          signature: b64url(await identity.sign(signingStatement(canonical, nsChallenge, decision))),
        };
        if (approved && started.second_factor === 'required') {
          params.attestation = await this.attest({
            pin,
            audience: started.audience,
            nsChallenge,
            purpose: 'sign',
            account: identity,
          });
        }
        const finished = await ns.request('sign.finish', params);
        return {
          action: 'sign',
          server: started.server?.name,
          shown: started.content.fields,
          result: finished.status,
          transaction: finished.transaction,
        };
      } finally {
        ns.close();
      }
    }
    throw new FlowError(`No account of this app may sign this request (${lastError}).`);
  }

  // -- push: the inbox at the MC ----------------------------------------------------------------------

  /**
   * Pull the mailbox and open every envelope this app can; each is checked against the server key
   * pinned for its account, so a message the MC altered or a stranger sent is dropped.
   */
  async inbox() {
    const fetched = await withChannel(this.serviceChannel('mc'), (mc) => mc.request('mailbox.fetch'));
    const records = await this.accountRecords();
    const items = [];
    for (const message of fetched.messages ?? []) {
      const opened = this.openMessage(records, String(fetched.mailbox), message);
      if (opened) items.push(opened);
    }
    return items;
  }

  /**
   * @private
   * @param {AccountRecord[]} records
   * @param {string} mailbox
   * @param {Record<string, any>} message
   */
  openMessage(records, mailbox, message) {
    const sender =
      typeof message.sender === 'string' && /^[0-9a-f]{64}$/.test(message.sender) ? message.sender : '';
    for (const record of records) {
      if (record.server_key_hash !== sender || !record.encryption_key || !record.server_public_key) continue;
      try {
        const body = openEnvelope(
          unb64url(String(message.envelope)),
          unb64url(record.encryption_key),
          fromHex(record.server_public_key),
          fromHex(record.server_key_hash),
          mailbox,
        );
        /** @type {Record<string, any>} */
        const opened = { id: message.id, account: record.id, userid: record.user_id, ...body };
        if (body.context && typeof body.context === 'object') opened.shows = contextLines(body.context);
        return opened;
      } catch (error) {
        if (!(error instanceof EnvelopeError || error instanceof TypeError)) throw error;
      }
    }
    return null;
  }

  /**
   * Remove requests from the mailbox once answered: ns used each up when the app started it, so the inbox
   * then lists only what still waits. Unknown ids are ignored by the MC.
   * @param {string[]} ids
   * @returns {Promise<number>} how many the MC deleted
   */
  async ack(ids) {
    if (ids.length === 0) return 0;
    const answer = await withChannel(this.serviceChannel('mc'), (mc) => mc.request('mailbox.ack', { ids }));
    return Number(answer.deleted ?? 0);
  }

  /**
   * Answer a login or signing request from the inbox. A login needs the number the login page shows.
   * @param {string} messageId
   * @param {{number?: number | null, pin?: string | null, decline?: boolean}} options
   */
  async approve(messageId, { number = null, pin, decline = false }) {
    for (const item of await this.inbox()) {
      if (item.id !== messageId || !['login', 'sign'].includes(item.type)) continue;
      const record = /** @type {AccountRecord} */ (
        (await this.accountRecords()).find((a) => a.id === item.account)
      );
      /** @type {import('./qr.js').QRPayload} */
      const payload = {
        kind: item.type,
        serverId: item.server_id,
        sigmaiUri: record.sigmai_uri,
        serverKeyHash: fromHex(record.server_key_hash),
        itemId: item.push,
        secret: unb64url(item.challenge),
        serverName: record.server_name,
      };
      if (payload.kind === 'sign')
        return this.sign(payload, { pin, approve: !decline, accountId: record.id });
      if ((number === null || number === undefined) && !decline) {
        throw new FlowError('Pick the number the login page shows.');
      }
      return this.login(payload, { pin, approve: !decline, accountId: record.id, number });
    }
    throw new FlowError('No such request in the inbox (it may have expired).');
  }

  /**
   * End the sessions of this app's accounts (or of one).
   * @param {{accountId?: string | null}} [options]
   */
  async logout({ accountId = null } = {}) {
    let ended = 0;
    for (const record of await this.accountRecords()) {
      if (accountId && record.id !== accountId) continue;
      const answer = await withChannel(
        this.channel(record.sigmai_uri, await this.accountKey(record), record.server_key_hash),
        (ns) => ns.request('session.logout'),
      );
      ended += Number(answer.ended ?? 0);
    }
    return { ended };
  }
}

export { ChannelError, RemoteError };
