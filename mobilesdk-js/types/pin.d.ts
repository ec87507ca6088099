/**
 * The OPRF input of a PIN. NFC first, so a PIN typed composed or decomposed is the same PIN; lengths
 * count code points as the Python SDK does; control characters and lone surrogates are never typed.
 * @param {string} pin
 * @returns {Uint8Array}
 */
export function pinInput(pin: string): Uint8Array;
/** @returns {Uint8Array} 32 random bytes that make the verifier useless without the phone */
export function newDeviceSecret(): Uint8Array;
/**
 * Blind the PIN for the SFS. Send `blindedElement`; keep the request for `verifier` or `prove`.
 * @param {string} pin
 * @returns {{blind: Uint8Array, blindedElement: Uint8Array}}
 */
export function start(pin: string): {
    blind: Uint8Array;
    blindedElement: Uint8Array;
};
/**
 * Registration: the PIN verifier for the SFS, a 32-byte Ed25519 public key.
 * @param {string} pin
 * @param {{blind: Uint8Array}} request
 * @param {Uint8Array} evaluatedElement
 * @param {Uint8Array} deviceSecret
 * @returns {Uint8Array}
 */
export function verifier(pin: string, request: {
    blind: Uint8Array;
}, evaluatedElement: Uint8Array, deviceSecret: Uint8Array): Uint8Array;
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
export function prove(pin: string, request: {
    blind: Uint8Array;
}, evaluatedElement: Uint8Array, deviceSecret: Uint8Array, statement: Uint8Array): Uint8Array;
export const MIN_PIN_LENGTH: 4;
export const MAX_PIN_LENGTH: 64;
export const PROOF_CONTEXT: Uint8Array<ArrayBufferLike>;
export class PinError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
