// RFC 9497 OPRF, mode 0x00, suite ristretto255-SHA512: the client's Blind and Finalize, and the server's
// BlindEvaluate (for tests). The group, hash-to-group and scalar field are @noble/curves' ristretto255;
// this file only strings them together as RFC 9497 section 3.3.1 says (nextauth_core/oprf.py in Python).

import { ristretto255, ristretto255_hasher } from '../noble/curves/ed25519.js';
import { sha512 } from '../noble/hashes/sha2.js';
import { concat, randomBytes, utf8 } from './bytes.js';

const Point = ristretto255.Point;
const Fn = Point.Fn;
const CONTEXT = concat(utf8('OPRFV1-'), new Uint8Array([0x00]), utf8('-ristretto255-SHA512'));
const HASH_TO_GROUP_DST = concat(utf8('HashToGroup-'), CONTEXT);
const DERIVE_KEY_PAIR_DST = concat(utf8('DeriveKeyPair'), CONTEXT);
const MAX_INPUT = 0xffff;

export class OPRFError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'OPRFError';
  }
}

/** @param {number} n */
function i2osp2(n) {
  return new Uint8Array([n >> 8, n & 0xff]);
}

/** @param {Uint8Array} input */
function inputElement(input) {
  if (input.length > MAX_INPUT) throw new OPRFError('private input too long');
  const element = ristretto255_hasher.hashToCurve(input, { DST: HASH_TO_GROUP_DST });
  if (element.is0()) throw new OPRFError('private input maps to the identity element');
  return element;
}

/** A canonical, non-zero scalar (32 bytes little-endian). @param {Uint8Array} bytes @param {string} name */
function scalar(bytes, name) {
  if (bytes.length !== 32) throw new OPRFError(`${name} must be 32 bytes`);
  let value;
  try {
    value = Fn.fromBytes(bytes);
  } catch {
    throw new OPRFError(`${name} is not a canonical ristretto255 scalar`);
  }
  if (value === 0n) throw new OPRFError(`${name} must not be zero`);
  return value;
}

/** A canonical encoding of a group element other than the identity. @param {Uint8Array} bytes @param {string} name */
function element(bytes, name) {
  if (bytes.length !== 32) throw new OPRFError(`${name} must be 32 bytes`);
  let point;
  try {
    point = Point.fromBytes(bytes);
  } catch {
    throw new OPRFError(`${name} is not a valid canonical ristretto255 encoding`);
  }
  if (point.is0()) throw new OPRFError(`${name} must not be the identity element`);
  return point;
}

/** A uniformly random non-zero scalar. @returns {Uint8Array} */
export function randomScalar() {
  for (;;) {
    // 64 uniform bytes reduced mod L: the bias is about 2^-260.
    let wide = 0n;
    for (const byte of randomBytes(64).reverse()) wide = (wide << 8n) | BigInt(byte);
    const value = Fn.create(wide);
    if (value !== 0n) return Fn.toBytes(value);
  }
}

/**
 * Blind (client). Keep `blind`, send `blindedElement`. `fixedBlind` only reproduces test vectors.
 * @param {Uint8Array} input
 * @param {Uint8Array} [fixedBlind]
 * @returns {{blind: Uint8Array, blindedElement: Uint8Array}}
 */
export function blind(input, fixedBlind) {
  const b = fixedBlind ?? randomScalar();
  const product = inputElement(input).multiply(scalar(b, 'blind'));
  return { blind: b, blindedElement: product.toBytes() };
}

/**
 * Finalize (client): unblind the server's answer and hash it with the input; 64 bytes.
 * @param {Uint8Array} input
 * @param {Uint8Array} blindScalar
 * @param {Uint8Array} evaluatedElement
 * @returns {Uint8Array}
 */
export function finalize(input, blindScalar, evaluatedElement) {
  if (input.length > MAX_INPUT) throw new OPRFError('private input too long');
  const inverse = Fn.inv(scalar(blindScalar, 'blind'));
  const unblinded = element(evaluatedElement, 'evaluated_element').multiply(inverse).toBytes();
  return sha512(concat(i2osp2(input.length), input, i2osp2(unblinded.length), unblinded, utf8('Finalize')));
}

/**
 * BlindEvaluate (server side; the SDK only uses it in tests).
 * @param {Uint8Array} serverKey
 * @param {Uint8Array} blindedElement
 */
export function blindEvaluate(serverKey, blindedElement) {
  return element(blindedElement, 'blinded_element').multiply(scalar(serverKey, 'server_key')).toBytes();
}

/**
 * DeriveKeyPair (RFC 9497 section 3.2.1), for the RFC's test key.
 * @param {Uint8Array} seed
 * @param {Uint8Array} info
 * @returns {Uint8Array} the private scalar
 */
export function deriveKeyPair(seed, info) {
  const deriveInput = concat(seed, i2osp2(info.length), info);
  for (let counter = 0; counter < 256; counter++) {
    const sk = ristretto255_hasher.hashToScalar(concat(deriveInput, new Uint8Array([counter])), {
      DST: DERIVE_KEY_PAIR_DST,
    });
    if (sk !== 0n) return Fn.toBytes(sk);
  }
  throw new OPRFError('DeriveKeyPair found no key');
}
