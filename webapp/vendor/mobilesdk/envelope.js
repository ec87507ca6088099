// The envelope ns sends an app through the Message Center (nextauth_core/envelope.py): HPKE (RFC 9180,
// base mode, single shot, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to the account's
// X25519 key, with ns's Ed25519 signature inside. The MC can neither read nor alter it undetected.

import { ed25519, x25519 } from '../noble/curves/ed25519.js';
import { chacha20poly1305 } from '../noble/ciphers/chacha.js';
import { sha256 } from '../noble/hashes/sha2.js';
import { extract, expand } from '../noble/hashes/hkdf.js';
import { concat, equalBytes, fromUtf8, lengthPrefixed, utf8 } from './bytes.js';
import { strictParse } from './json.js';

export const SUITE_V1 = 0x01;
const LABEL = utf8('nextauth mc envelope v1');
const MAX_ENVELOPE = 16 * 1024;
const HPKE_V1 = utf8('HPKE-v1');
const KEM_SUITE = concat(utf8('KEM'), new Uint8Array([0x00, 0x20]));
const HPKE_SUITE = concat(utf8('HPKE'), new Uint8Array([0x00, 0x20, 0x00, 0x01, 0x00, 0x03]));
const EMPTY = new Uint8Array(0);

export class EnvelopeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

// -- RFC 9180 ----------------------------------------------------------------------------------------

/** @param {Uint8Array} suite @param {Uint8Array} salt @param {string} label @param {Uint8Array} ikm */
function labeledExtract(suite, salt, label, ikm) {
  return extract(sha256, concat(HPKE_V1, suite, utf8(label), ikm), salt);
}

/**
 * @param {Uint8Array} suite @param {Uint8Array} prk @param {string} label @param {Uint8Array} info
 * @param {number} length
 */
function labeledExpand(suite, prk, label, info, length) {
  const full = concat(new Uint8Array([length >> 8, length & 0xff]), HPKE_V1, suite, utf8(label), info);
  return expand(sha256, prk, full, length);
}

/** @param {Uint8Array} dh @param {Uint8Array} kemContext */
function kemSharedSecret(dh, kemContext) {
  const prk = labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, prk, 'shared_secret', kemContext, 32);
}

/** @param {Uint8Array} shared @param {Uint8Array} info */
function keySchedule(shared, info) {
  const context = concat(
    new Uint8Array([0x00]), // mode_base
    labeledExtract(HPKE_SUITE, EMPTY, 'psk_id_hash', EMPTY),
    labeledExtract(HPKE_SUITE, EMPTY, 'info_hash', info),
  );
  const secret = labeledExtract(HPKE_SUITE, shared, 'secret', EMPTY);
  return {
    key: labeledExpand(HPKE_SUITE, secret, 'key', context, 32),
    nonce: labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, 12),
  };
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function dh(a, b) {
  const shared = x25519.getSharedSecret(a, b);
  if (equalBytes(shared, new Uint8Array(32))) throw new EnvelopeError('bad key share');
  return shared;
}

/**
 * Single-shot HPKE seal: enc || ciphertext.
 * @param {Uint8Array} recipientPublic
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} info
 * @param {Uint8Array} [ephemeral] only to reproduce test vectors
 */
export function hpkeSeal(recipientPublic, plaintext, info, ephemeral = x25519.utils.randomSecretKey()) {
  const enc = x25519.getPublicKey(ephemeral);
  const shared = kemSharedSecret(dh(ephemeral, recipientPublic), concat(enc, recipientPublic));
  const { key, nonce } = keySchedule(shared, info);
  return concat(enc, chacha20poly1305(key, nonce, EMPTY).encrypt(plaintext));
}

/**
 * @param {Uint8Array} recipientSecret
 * @param {Uint8Array} sealed enc || ciphertext
 * @param {Uint8Array} info
 */
export function hpkeOpen(recipientSecret, sealed, info) {
  if (sealed.length < 32 + 16) throw new EnvelopeError('envelope too short');
  const enc = sealed.subarray(0, 32);
  const shared = kemSharedSecret(dh(recipientSecret, enc), concat(enc, x25519.getPublicKey(recipientSecret)));
  const { key, nonce } = keySchedule(shared, info);
  return chacha20poly1305(key, nonce, EMPTY).decrypt(sealed.subarray(32));
}

// -- the envelope ------------------------------------------------------------------------------------

/** @param {string} mailbox @param {Uint8Array} senderKeyHash */
function info(mailbox, senderKeyHash) {
  return lengthPrefixed(LABEL, utf8(mailbox), senderKeyHash);
}

/**
 * Open an envelope and check it: for this account's key, signed by the server key pinned at enrolment,
 * for this mailbox, not expired. Anything else throws EnvelopeError and the app drops the message.
 * @param {Uint8Array} envelope
 * @param {Uint8Array} recipientSecret the account's X25519 private key
 * @param {Uint8Array} senderPublic the pinned ns server key (32 bytes)
 * @param {Uint8Array} senderKeyHash
 * @param {string} mailbox
 * @param {number} [now] seconds since the epoch
 * @returns {Record<string, any>}
 */
export function openEnvelope(envelope, recipientSecret, senderPublic, senderKeyHash, mailbox, now) {
  if (envelope.length === 0 || envelope.length > MAX_ENVELOPE || envelope[0] !== SUITE_V1) {
    throw new EnvelopeError('unknown envelope format');
  }
  let plaintext;
  try {
    plaintext = hpkeOpen(recipientSecret, envelope.subarray(1), info(mailbox, senderKeyHash));
  } catch {
    throw new EnvelopeError('envelope does not decrypt: not for this account, or altered');
  }
  const size = (plaintext[0] << 8) | plaintext[1];
  const inner = plaintext.subarray(2, 2 + size);
  const signature = plaintext.subarray(2 + size);
  const signed = lengthPrefixed(LABEL, utf8('signature'), utf8(mailbox), senderKeyHash, inner);
  let valid = false;
  try {
    valid = signature.length === 64 && ed25519.verify(signature, signed, senderPublic, { zip215: false });
  } catch {
    valid = false;
  }
  if (!valid) throw new EnvelopeError('envelope is not signed by the pinned server');
  let body;
  try {
    body = strictParse(fromUtf8(inner));
  } catch {
    throw new EnvelopeError('envelope content is not JSON');
  }
  if (body?.mailbox !== mailbox) throw new EnvelopeError('envelope was meant for another mailbox');
  const current = now ?? Date.now() / 1000;
  if (typeof body.exp !== 'number' || current > body.exp) throw new EnvelopeError('envelope expired');
  if (body.msg === null || typeof body.msg !== 'object') throw new EnvelopeError('envelope is empty');
  return body.msg;
}

/**
 * What ns does (the SDK uses it only in tests, to play the server).
 * @param {Uint8Array} recipientPublic
 * @param {Uint8Array} senderSecret
 * @param {Uint8Array} senderKeyHash
 * @param {string} mailbox
 * @param {Record<string, any>} message
 * @param {{ttl?: number, now?: number}} [options]
 */
export function sealEnvelope(recipientPublic, senderSecret, senderKeyHash, mailbox, message, options = {}) {
  const issued = Math.floor(options.now ?? Date.now() / 1000);
  const inner = utf8(
    JSON.stringify({ iat: issued, exp: issued + (options.ttl ?? 120), mailbox, msg: message }),
  );
  const signature = ed25519.sign(
    lengthPrefixed(LABEL, utf8('signature'), utf8(mailbox), senderKeyHash, inner),
    senderSecret,
  );
  const sealed = hpkeSeal(
    recipientPublic,
    concat(lengthPrefixed(inner), signature),
    info(mailbox, senderKeyHash),
  );
  return concat(new Uint8Array([SUITE_V1]), sealed);
}
