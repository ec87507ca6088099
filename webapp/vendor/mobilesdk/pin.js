// PIN proofs (nextauth_core/pin.py): the PIN only leaves the phone OPRF-blinded; the key that signs
// proofs comes from the OPRF output and a 32-byte device secret, so neither the phone alone nor the SFS
// database alone can test PIN guesses.

import { ed25519 } from '../noble/curves/ed25519.js';
import { sha256 } from '../noble/hashes/sha2.js';
import { hkdf } from '../noble/hashes/hkdf.js';
import { concat, randomBytes, utf8 } from './bytes.js';
import * as oprf from './oprf.js';

export const MIN_PIN_LENGTH = 4;
export const MAX_PIN_LENGTH = 64;
const OPRF_INPUT_PREFIX = utf8('nextauth-pin-v1');
const HKDF_INFO = utf8('nextauth pin key v1');
export const PROOF_CONTEXT = concat(utf8('nextauth pin proof v1'), new Uint8Array([0]));

export class PinError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'PinError';
  }
}

/**
 * The OPRF input of a PIN. NFC first, so a PIN typed composed or decomposed is the same PIN; lengths
 * count code points as the Python SDK does; control characters and lone surrogates are never typed.
 * @param {string} pin
 * @returns {Uint8Array}
 */
export function pinInput(pin) {
  if (typeof pin !== 'string') throw new PinError('the PIN must be a string');
  if (/\p{Cs}/u.test(pin)) throw new PinError('the PIN must not contain unpaired surrogates');
  const normalised = pin.normalize('NFC');
  const length = [...normalised].length;
  if (length < MIN_PIN_LENGTH || length > MAX_PIN_LENGTH) {
    throw new PinError(`the PIN must be ${MIN_PIN_LENGTH} to ${MAX_PIN_LENGTH} characters long`);
  }
  if (/\p{Cc}/u.test(normalised)) throw new PinError('the PIN must not contain control characters');
  return concat(OPRF_INPUT_PREFIX, utf8(normalised));
}

/** @returns {Uint8Array} 32 random bytes that make the verifier useless without the phone */
export function newDeviceSecret() {
  return randomBytes(32);
}

/**
 * Blind the PIN for the SFS. Send `blindedElement`; keep the request for `verifier` or `prove`.
 * @param {string} pin
 * @returns {{blind: Uint8Array, blindedElement: Uint8Array}}
 */
export function start(pin) {
  return oprf.blind(pinInput(pin));
}

/**
 * @param {string} pin
 * @param {{blind: Uint8Array}} request
 * @param {Uint8Array} evaluatedElement
 * @param {Uint8Array} deviceSecret
 */
function signingSeed(pin, request, evaluatedElement, deviceSecret) {
  if (deviceSecret.length !== 32) throw new PinError('the device secret must be 32 bytes');
  const y = oprf.finalize(pinInput(pin), request.blind, evaluatedElement);
  return hkdf(sha256, y, deviceSecret, HKDF_INFO, 32);
}

/**
 * Registration: the PIN verifier for the SFS, a 32-byte Ed25519 public key.
 * @param {string} pin
 * @param {{blind: Uint8Array}} request
 * @param {Uint8Array} evaluatedElement
 * @param {Uint8Array} deviceSecret
 * @returns {Uint8Array}
 */
export function verifier(pin, request, evaluatedElement, deviceSecret) {
  return ed25519.getPublicKey(signingSeed(pin, request, evaluatedElement, deviceSecret));
}

/**
 * Verification: sign the SFS's statement with the PIN key. A wrong PIN gives another key; only the SFS
 * can tell (and it has counted the attempt already).
 * @param {string} pin
 * @param {{blind: Uint8Array}} request
 * @param {Uint8Array} evaluatedElement
 * @param {Uint8Array} deviceSecret
 * @param {Uint8Array} statement
 * @returns {Uint8Array}
 */
export function prove(pin, request, evaluatedElement, deviceSecret, statement) {
  const seed = signingSeed(pin, request, evaluatedElement, deviceSecret);
  return ed25519.sign(concat(PROOF_CONTEXT, statement), seed);
}
