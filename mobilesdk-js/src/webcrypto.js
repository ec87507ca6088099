// Long-term keys that cannot be read out: a Keyring (see app.js) over WebCrypto, whose private keys are
// made non-extractable. The browser keeps them as CryptoKey objects (IndexedDB stores those as they are,
// never as bytes); a script of the app's origin can ask for signatures while the app runs, but neither it
// nor anyone who copies the storage gets the key itself through the web platform.
//
// Which keys: the device key and the account keys, ECDSA P-256 (the SDK's default) and Ed25519 where the
// browser has it. Not the account's X25519 envelope key and not the PIN's device secret: the SDK derives
// and decrypts with those synchronously, byte by byte (docs/web-authenticator.md says why and what
// follows). Where WebCrypto or the algorithm is missing (a page over plain http has no crypto.subtle),
// generate() answers null and the App makes the key itself, kept in its store.

import { b64url } from './bytes.js';
import { KEY_TYPE_ED25519, KEY_TYPE_P256, thumbprint } from './sigmai.js';

const ALGORITHMS = {
  p256: {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
    keyType: KEY_TYPE_P256,
  },
  ed25519: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' }, keyType: KEY_TYPE_ED25519 },
};

/**
 * Where the CryptoKeys live: structured-clone storage (IndexedDB in a browser), apart from the JSON store.
 * @typedef {object} CryptoKeyStore
 * @property {(id: string) => Promise<{privateKey: CryptoKey, publicRaw: Uint8Array} | undefined>} getKey
 * @property {(id: string, value: {privateKey: CryptoKey, publicRaw: Uint8Array}) => Promise<void>} putKey
 */

/** A long-term key held by WebCrypto: the SigningIdentity of sigmai.js, with an asynchronous sign. */
export class CryptoKeyIdentity {
  /**
   * @param {'p256' | 'ed25519'} type
   * @param {Uint8Array} publicRaw uncompressed point (P-256) or 32 bytes (Ed25519)
   * @param {CryptoKey} privateKey
   * @param {SubtleCrypto} subtle
   */
  constructor(type, publicRaw, privateKey, subtle) {
    this.type = type;
    this.keyType = ALGORITHMS[type].keyType;
    this.publicRaw = publicRaw;
    /** @private */
    this.privateKey = privateKey;
    /** @private */
    this.subtle = subtle;
  }

  get thumbprint() {
    return thumbprint(this.keyType, this.publicRaw);
  }

  get identityBlock() {
    const block = new Uint8Array(1 + this.publicRaw.length);
    block[0] = this.keyType;
    block.set(this.publicRaw, 1);
    return block;
  }

  /**
   * 64 bytes, as DeviceIdentity's: WebCrypto's ECDSA gives r || s (IEEE P1363), not DER.
   * @param {Uint8Array} message
   */
  async sign(message) {
    const algorithm = ALGORITHMS[this.type].sign;
    return new Uint8Array(
      await this.subtle.sign(algorithm, this.privateKey, /** @type {BufferSource} */ (message)),
    );
  }
}

/** A Keyring (see app.js) whose keys are non-extractable CryptoKeys. */
export class WebCryptoKeyring {
  /**
   * @param {CryptoKeyStore} keys
   * @param {{subtle?: SubtleCrypto, random?: (bytes: Uint8Array) => Uint8Array}} [options]
   */
  constructor(keys, options = {}) {
    this.keys = keys;
    /** @type {SubtleCrypto | undefined} */
    // Given as undefined: no WebCrypto here, as on a page over plain http.
    this.subtle = 'subtle' in options ? options.subtle : globalThis.crypto?.subtle;
    this.random =
      options.random ?? ((/** @type {Uint8Array} */ bytes) => globalThis.crypto.getRandomValues(bytes));
  }

  /**
   * A new non-extractable key pair, or null where WebCrypto cannot make one of this type.
   * @param {'p256' | 'ed25519'} type
   * @returns {Promise<{stored: import('./app.js').StoredKey, identity: CryptoKeyIdentity} | null>}
   */
  async generate(type) {
    const algorithm = ALGORITHMS[type];
    if (!this.subtle || !algorithm) return null;
    let pair;
    try {
      pair = /** @type {CryptoKeyPair} */ (
        await this.subtle.generateKey(algorithm.generate, false, ['sign'])
      );
    } catch {
      return null; // a browser without this algorithm: the App makes the key itself
    }
    // A public key stays exportable whatever `extractable` says; only the private key is sealed.
    const publicRaw = new Uint8Array(await this.subtle.exportKey('raw', pair.publicKey));
    const id = b64url(this.random(new Uint8Array(16)));
    await this.keys.putKey(id, { privateKey: pair.privateKey, publicRaw });
    return {
      stored: { type, keyring: 'webcrypto', id, public: b64url(publicRaw) },
      identity: new CryptoKeyIdentity(type, publicRaw, pair.privateKey, this.subtle),
    };
  }

  /**
   * @param {import('./app.js').StoredKey} stored
   * @returns {Promise<CryptoKeyIdentity>}
   */
  async load(stored) {
    if (stored.keyring !== 'webcrypto' || typeof stored.id !== 'string' || !ALGORITHMS[stored.type]) {
      throw new Error('not a key of this keyring');
    }
    if (!this.subtle) throw new Error('this browser offers no WebCrypto here (a page over plain http?)');
    const held = await this.keys.getKey(stored.id);
    if (!held) throw new Error("the key is gone from this browser's storage: set the app up again");
    const publicRaw = new Uint8Array(held.publicRaw);
    if (typeof stored.public === 'string' && b64url(publicRaw) !== stored.public) {
      throw new Error('the stored key does not match its record');
    }
    return new CryptoKeyIdentity(stored.type, publicRaw, held.privateKey, this.subtle);
  }
}
