// sigmai version 1, the app's (initiator's) side, sans-IO: frames in, frames and events out.
// docs/sigmai.md is normative; docs/sigmai-test-vectors.json pins the bytes (test/sigmai.test.js).

import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { extract, expand } from '@noble/hashes/hkdf.js';
import { b64url, concat, equalBytes, randomBytes, utf8 } from './bytes.js';

export const VERSION = 0x01;
export const CLIENT_HELLO = 0x01;
export const SERVER_HELLO = 0x02;
export const CLIENT_FINISH = 0x03;
export const RECORD = 0x17;
export const KEY_TYPE_ED25519 = 0x01;
export const KEY_TYPE_P256 = 0x02;
export const DEFAULT_MAX_MESSAGE = 64 * 1024;
export const RECORD_OVERHEAD = 18;

const CLIENT_HELLO_LEN = 98;
const SERVER_HELLO_CLEAR_LEN = 66;
const SERVER_HELLO_LEN = 210;
const LABEL_PREFIX = utf8('sigmai1 ');
const SERVER_SIGNATURE_CONTEXT = utf8('sigmai v1, server signature');
const CLIENT_SIGNATURE_CONTEXT = utf8('sigmai v1, client signature');
const SIGNATURE_PAD = new Uint8Array(64).fill(0x20);
const ZEROS = new Uint8Array(32);
const EMPTY_HASH = sha256(new Uint8Array(0));
const RECORD_HEADER = new Uint8Array([VERSION, RECORD]);
const MAX_SEQUENCE = (1n << 64n) - 1n;

/** Any failure of the channel: the connection is closed for good and the peer is not told why. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// -- key schedule (docs/sigmai.md section 5) ----------------------------------------------------------

/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function transcriptHash(...parts) {
  return sha256(concat(...parts));
}

/**
 * @param {Uint8Array} secret
 * @param {string | Uint8Array} label
 * @param {Uint8Array} context
 * @param {number} length
 * @returns {Uint8Array}
 */
export function expandLabel(secret, label, context, length) {
  const full = concat(LABEL_PREFIX, typeof label === 'string' ? utf8(label) : label);
  const info = concat(
    new Uint8Array([length >> 8, length & 0xff, full.length]),
    full,
    new Uint8Array([context.length]),
    context,
  );
  return expand(sha256, secret, info, length);
}

/** @param {Uint8Array} secret @param {string | Uint8Array} label @param {Uint8Array} th */
export function deriveSecret(secret, label, th) {
  return expandLabel(secret, label, th, 32);
}

/** @param {Uint8Array} base @param {Uint8Array} th */
export function finishedMac(base, th) {
  return hmac(sha256, expandLabel(base, 'finished', new Uint8Array(0), 32), th);
}

/** @param {Uint8Array} shared @param {Uint8Array} helloTranscript */
export function handshakeSecrets(shared, helloTranscript) {
  const early = extract(sha256, ZEROS, ZEROS);
  const handshake = extract(sha256, shared, deriveSecret(early, 'derived', EMPTY_HASH));
  return {
    handshakeSecret: handshake,
    clientHandshake: deriveSecret(handshake, 'c hs traffic', helloTranscript),
    serverHandshake: deriveSecret(handshake, 's hs traffic', helloTranscript),
  };
}

/** @param {Uint8Array} handshakeSecret @param {Uint8Array} fullTranscript */
export function applicationSecrets(handshakeSecret, fullTranscript) {
  const master = extract(sha256, ZEROS, deriveSecret(handshakeSecret, 'derived', EMPTY_HASH));
  return {
    masterSecret: master,
    clientApplication: deriveSecret(master, 'c ap traffic', fullTranscript),
    serverApplication: deriveSecret(master, 's ap traffic', fullTranscript),
    exporterMaster: deriveSecret(master, 'exp master', fullTranscript),
  };
}

/**
 * RFC 8446 section 7.5 exporter with sigmai labels.
 * @param {Uint8Array} exporterMaster
 * @param {Uint8Array} label
 * @param {Uint8Array} context
 * @param {number} length
 */
export function exportKeyingMaterial(exporterMaster, label, context, length) {
  if (label.length < 1 || label.length > 200 || length < 1 || length > 8160) {
    throw new RangeError('exporter label must be 1..200 bytes and length 1..8160');
  }
  const secret = deriveSecret(exporterMaster, label, EMPTY_HASH);
  return expandLabel(secret, 'exporter', sha256(context), length);
}

/** One direction's AEAD: the nonce is the IV XOR a sequence number nothing on the wire carries. */
export class RecordProtection {
  /** @param {Uint8Array} secret a traffic secret */
  constructor(secret) {
    this.key = expandLabel(secret, 'key', new Uint8Array(0), 32);
    this.iv = expandLabel(secret, 'iv', new Uint8Array(0), 12);
    this.sequence = 0n;
  }

  /** @returns {Uint8Array} */
  nextNonce() {
    if (this.sequence > MAX_SEQUENCE) throw new ProtocolError('sequence number exhausted');
    const nonce = this.iv.slice();
    let seq = this.sequence;
    for (let i = 11; i >= 4; i--) {
      nonce[i] ^= Number(seq & 0xffn);
      seq >>= 8n;
    }
    this.sequence += 1n;
    return nonce;
  }

  /** @param {Uint8Array} plaintext @param {Uint8Array} aad */
  seal(plaintext, aad) {
    return chacha20poly1305(this.key, this.nextNonce(), aad).encrypt(plaintext);
  }

  /** @param {Uint8Array} ciphertext @param {Uint8Array} aad */
  open(ciphertext, aad) {
    const nonce = this.nextNonce();
    try {
      return chacha20poly1305(this.key, nonce, aad).decrypt(ciphertext);
    } catch {
      throw new ProtocolError('record does not authenticate');
    }
  }
}

// -- keys (docs/sigmai.md section 2) ------------------------------------------------------------------

/** SHA-256 of a server's raw Ed25519 public key: what an app pins. @param {Uint8Array} publicKey */
export function serverKeyHash(publicKey) {
  return sha256(publicKey);
}

/**
 * RFC 7638 thumbprint of a device or account key.
 * @param {number} keyType
 * @param {Uint8Array} raw
 * @returns {string}
 */
export function thumbprint(keyType, raw) {
  const jwk =
    keyType === KEY_TYPE_ED25519
      ? `{"crv":"Ed25519","kty":"OKP","x":"${b64url(raw)}"}`
      : `{"crv":"P-256","kty":"EC","x":"${b64url(raw.subarray(1, 33))}","y":"${b64url(raw.subarray(33))}"}`;
  return b64url(sha256(utf8(jwk)));
}

/**
 * A server's Ed25519 key as received: canonical, on the curve and not of small order (under a
 * small-order key trivial signatures pass for many messages).
 * @param {Uint8Array} raw
 */
function checkServerKey(raw) {
  let point;
  try {
    point = ed25519.Point.fromBytes(raw, false);
  } catch {
    throw new ProtocolError('malformed server key');
  }
  if (point.isSmallOrder()) throw new ProtocolError('weak server key');
}

/**
 * What a channel and the flows need of a long-term key. DeviceIdentity holds its secret in memory; a
 * keyring (App option `keyring`) may hand one whose secret cannot leave it, such as a non-extractable
 * WebCrypto key, whose `sign` is asynchronous.
 * @typedef {object} SigningIdentity
 * @property {'p256' | 'ed25519'} type
 * @property {number} keyType the type byte of the identity block
 * @property {Uint8Array} publicRaw
 * @property {string} thumbprint
 * @property {Uint8Array} identityBlock
 * @property {(message: Uint8Array) => Uint8Array | Promise<Uint8Array>} sign 64 bytes, as DeviceIdentity's
 */

/** A device's (or an account's) long-term key: ECDSA P-256 or Ed25519. */
export class DeviceIdentity {
  /** @param {'p256' | 'ed25519'} type @param {Uint8Array} secretKey 32 bytes */
  constructor(type, secretKey) {
    if (secretKey.length !== 32) throw new TypeError('a device secret key is 32 bytes');
    this.type = type;
    this.keyType = type === 'ed25519' ? KEY_TYPE_ED25519 : KEY_TYPE_P256;
    if (type === 'ed25519') {
      this.publicRaw = ed25519.getPublicKey(secretKey);
    } else if (type === 'p256') {
      this.publicRaw = p256.getPublicKey(secretKey, false);
    } else {
      throw new TypeError('device keys are Ed25519 or ECDSA P-256');
    }
    /** @private */
    this.secretKey = secretKey;
  }

  /** @param {'p256' | 'ed25519'} [type] @returns {DeviceIdentity} */
  static generate(type = 'p256') {
    const secret = type === 'ed25519' ? ed25519.utils.randomSecretKey() : p256.utils.randomSecretKey();
    return new DeviceIdentity(type, secret);
  }

  /** @returns {{type: 'p256' | 'ed25519', secret: string}} what a store keeps */
  toJSON() {
    return { type: this.type, secret: b64url(this.secretKey) };
  }

  /** @returns {string} */
  get thumbprint() {
    return thumbprint(this.keyType, this.publicRaw);
  }

  /** The identity block of ClientFinish: type byte and raw public key. */
  get identityBlock() {
    return concat(new Uint8Array([this.keyType]), this.publicRaw);
  }

  /**
   * 64 bytes: Ed25519 as is; ECDSA over SHA-256 as fixed-width r || s.
   * @param {Uint8Array} message
   * @returns {Uint8Array}
   */
  sign(message) {
    if (this.type === 'ed25519') return ed25519.sign(message, this.secretKey);
    // RFC 6979 nonces and no low-s normalisation, as the reference SDK: the vectors stay reproducible.
    return p256.sign(message, this.secretKey, {
      prehash: true,
      format: 'compact',
      lowS: false,
      extraEntropy: false,
    });
  }
}

// -- the client state machine (docs/sigmai.md sections 3 to 7) ----------------------------------------

/** @param {Uint8Array} context @param {Uint8Array} th */
function signedContent(context, th) {
  return concat(SIGNATURE_PAD, context, new Uint8Array([0]), th);
}

/** @param {Uint8Array} frame @param {number} type */
function checkHeader(frame, type) {
  if (frame.length < 2 || frame[0] !== VERSION || frame[1] !== type) {
    throw new ProtocolError('unexpected version or message type');
  }
}

/**
 * @typedef {{type: 'handshake-complete', serverPublicKey: Uint8Array, transcriptHash: Uint8Array}
 *   | {type: 'message', data: Uint8Array}} ChannelEvent
 */

/**
 * The app's side of one channel. It knows (pins) the server key hash before it starts; the server is
 * checked against that pin and its signature before the app reveals its own key (SIGMA-I).
 */
export class ClientConnection {
  /**
   * @param {SigningIdentity} identity
   * @param {Uint8Array} pinnedKeyHash
   * @param {{maxMessage?: number, ephemeral?: Uint8Array, random?: Uint8Array}} [options]
   *   ephemeral and random only to reproduce the test vectors
   */
  constructor(identity, pinnedKeyHash, options = {}) {
    if (pinnedKeyHash.length !== 32) throw new TypeError('server key hash must be 32 bytes');
    this.identity = identity;
    this.pinnedKeyHash = pinnedKeyHash;
    this.maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
    /** @private */
    this.ephemeral = options.ephemeral ?? x25519.utils.randomSecretKey();
    /** @private */
    this.random = options.random ?? randomBytes(32);
    /** @type {'start' | 'wait-server-hello' | 'established' | 'closed'} */
    this.state = 'start';
    /** @type {Uint8Array[]} */
    this.outbox = [];
    /** @type {Uint8Array | null} */
    this.transcriptHash = null;
    /** @type {Uint8Array | null} */
    this.serverPublicKey = null;
    /** @private @type {RecordProtection | null} */
    this.sender = null;
    /** @private @type {RecordProtection | null} */
    this.receiver = null;
    /** @private @type {Uint8Array | null} */
    this.exporterMaster = null;
    /** @private @type {Uint8Array} */
    this.hello = new Uint8Array(0);
  }

  /** @returns {Uint8Array} the ClientHello frame */
  initiate() {
    if (this.state !== 'start') throw new ProtocolError('handshake already started');
    this.hello = concat(
      new Uint8Array([VERSION, CLIENT_HELLO]),
      x25519.getPublicKey(this.ephemeral),
      this.random,
      this.pinnedKeyHash,
    );
    this.state = 'wait-server-hello';
    return this.hello;
  }

  /** @returns {Uint8Array[]} frames to send, in order */
  framesToSend() {
    const frames = this.outbox;
    this.outbox = [];
    return frames;
  }

  /**
   * Consume one binary WebSocket message. A promise only when the ServerHello needs an identity whose
   * signature is asynchronous.
   * @param {Uint8Array} frame
   * @returns {ChannelEvent[] | Promise<ChannelEvent[]>}
   */
  receive(frame) {
    if (this.state === 'closed') throw new ProtocolError('connection is closed');
    try {
      if (frame.length > this.maxMessage + RECORD_OVERHEAD) throw new ProtocolError('frame too large');
      if (this.state === 'established') return this.openRecord(frame);
      if (this.state !== 'wait-server-hello') throw new ProtocolError('unexpected frame');
      return this.serverHello(frame);
    } catch (error) {
      this.close();
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError('malformed frame');
    }
  }

  /** @private @param {Uint8Array} frame @returns {ChannelEvent[]} */
  openRecord(frame) {
    checkHeader(frame, RECORD);
    if (frame.length < RECORD_OVERHEAD) throw new ProtocolError('short record');
    const receiver = /** @type {RecordProtection} */ (this.receiver);
    return [{ type: 'message', data: receiver.open(frame.subarray(2), RECORD_HEADER) }];
  }

  /** @private @param {Uint8Array} frame @returns {ChannelEvent[] | Promise<ChannelEvent[]>} */
  serverHello(frame) {
    checkHeader(frame, SERVER_HELLO);
    if (frame.length !== SERVER_HELLO_LEN) throw new ProtocolError('bad ServerHello length');
    const clear = frame.subarray(0, SERVER_HELLO_CLEAR_LEN);
    const serverShare = clear.subarray(2, 34);
    let shared;
    try {
      shared = x25519.getSharedSecret(this.ephemeral, serverShare);
    } catch {
      throw new ProtocolError('bad key share');
    }
    if (equalBytes(shared, ZEROS)) throw new ProtocolError('bad key share');
    const secrets = handshakeSecrets(shared, transcriptHash(this.hello, clear));
    const inner = new RecordProtection(secrets.serverHandshake).open(
      frame.subarray(SERVER_HELLO_CLEAR_LEN),
      clear,
    );
    const serverPublic = inner.subarray(0, 32);
    const signature = inner.subarray(32, 96);
    const finished = inner.subarray(96);
    if (!equalBytes(sha256(serverPublic), this.pinnedKeyHash)) {
      throw new ProtocolError('server key does not match the pinned key');
    }
    checkServerKey(serverPublic);
    const signed = signedContent(SERVER_SIGNATURE_CONTEXT, transcriptHash(this.hello, clear, serverPublic));
    if (!ed25519.verify(signature, signed, serverPublic, { zip215: false })) {
      throw new ProtocolError('server signature does not verify');
    }
    const expected = finishedMac(
      secrets.serverHandshake,
      transcriptHash(this.hello, clear, serverPublic, signature),
    );
    if (!equalBytes(expected, finished)) throw new ProtocolError('server Finished does not verify');

    // Only now, with the server proven, does the app reveal who it is.
    const block = this.identity.identityBlock;
    const deviceSignature = this.identity.sign(
      signedContent(CLIENT_SIGNATURE_CONTEXT, transcriptHash(this.hello, frame, block)),
    );
    if (!(deviceSignature instanceof Promise)) {
      return this.clientFinish(secrets, frame, block, deviceSignature, serverPublic);
    }
    return deviceSignature.then(
      (made) => {
        if (this.state !== 'wait-server-hello') throw new ProtocolError('connection is closed');
        try {
          return this.clientFinish(secrets, frame, block, made, serverPublic);
        } catch (error) {
          this.close();
          throw error;
        }
      },
      () => {
        this.close();
        throw new ProtocolError('the device key could not sign');
      },
    );
  }

  /**
   * @private
   * @param {{handshakeSecret: Uint8Array, clientHandshake: Uint8Array}} secrets
   * @param {Uint8Array} frame the ServerHello
   * @param {Uint8Array} block
   * @param {Uint8Array} deviceSignature
   * @param {Uint8Array} serverPublic
   * @returns {ChannelEvent[]}
   */
  clientFinish(secrets, frame, block, deviceSignature, serverPublic) {
    if (deviceSignature.length !== 64) throw new ProtocolError('the device key made no 64-byte signature');
    const clientFinished = finishedMac(
      secrets.clientHandshake,
      transcriptHash(this.hello, frame, block, deviceSignature),
    );
    const header = new Uint8Array([VERSION, CLIENT_FINISH]);
    const sealed = new RecordProtection(secrets.clientHandshake).seal(
      concat(block, deviceSignature, clientFinished),
      header,
    );
    const finish = concat(header, sealed);
    this.outbox.push(finish);

    const full = transcriptHash(this.hello, frame, finish);
    const app = applicationSecrets(secrets.handshakeSecret, full);
    this.sender = new RecordProtection(app.clientApplication);
    this.receiver = new RecordProtection(app.serverApplication);
    this.exporterMaster = app.exporterMaster;
    this.transcriptHash = full;
    this.serverPublicKey = serverPublic.slice();
    this.state = 'established';
    return [{ type: 'handshake-complete', serverPublicKey: this.serverPublicKey, transcriptHash: full }];
  }

  /**
   * Seal one application message.
   * @param {Uint8Array} data
   * @returns {Uint8Array} the record frame
   */
  send(data) {
    if (this.state !== 'established' || !this.sender) throw new ProtocolError('channel not established');
    if (data.length > this.maxMessage) throw new ProtocolError('message too large');
    return concat(RECORD_HEADER, this.sender.seal(data, RECORD_HEADER));
  }

  /**
   * Keying material unique to this channel, to bind application statements to it.
   * @param {Uint8Array} label
   * @param {Uint8Array} [context]
   * @param {number} [length]
   */
  exportKeyingMaterial(label, context = new Uint8Array(0), length = 32) {
    if (!this.exporterMaster) throw new ProtocolError('channel not established');
    return exportKeyingMaterial(this.exporterMaster, label, context, length);
  }

  close() {
    this.state = 'closed';
    this.sender = this.receiver = null;
    this.exporterMaster = null;
    this.outbox = [];
  }
}
