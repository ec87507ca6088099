/** @param {string} text @returns {Uint8Array} */
export function utf8(text: string): Uint8Array;
/** @param {Uint8Array} data @returns {string} */
export function fromUtf8(data: Uint8Array): string;
/** @param {Uint8Array} data @returns {string} */
export function toHex(data: Uint8Array): string;
/** @param {string} text @returns {Uint8Array} */
export function fromHex(text: string): Uint8Array;
/** Unpadded base64url (RFC 4648 section 5). @param {Uint8Array} data @returns {string} */
export function b64url(data: Uint8Array): string;
/** @param {string} text @returns {Uint8Array} */
export function unb64url(text: string): Uint8Array;
/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function concat(...parts: Uint8Array[]): Uint8Array;
/**
 * Each field prefixed with its 2-byte big-endian length, so no two field lists encode alike
 * (nextauth_core/statements.py).
 * @param {...Uint8Array} fields
 * @returns {Uint8Array}
 */
export function lengthPrefixed(...fields: Uint8Array[]): Uint8Array;
/**
 * Constant-time equality for secrets of public length.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean;
/** @param {number} n @returns {Uint8Array} */
export function randomBytes(n: number): Uint8Array;
