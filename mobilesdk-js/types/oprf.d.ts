/** A uniformly random non-zero scalar. @returns {Uint8Array} */
export function randomScalar(): Uint8Array;
/**
 * Blind (client). Keep `blind`, send `blindedElement`. `fixedBlind` only reproduces test vectors.
 * @param {Uint8Array} input
 * @param {Uint8Array} [fixedBlind]
 * @returns {{blind: Uint8Array, blindedElement: Uint8Array}}
 */
export function blind(input: Uint8Array, fixedBlind?: Uint8Array): {
    blind: Uint8Array;
    blindedElement: Uint8Array;
};
/**
 * Finalize (client): unblind the server's answer and hash it with the input; 64 bytes.
 * @param {Uint8Array} input
 * @param {Uint8Array} blindScalar
 * @param {Uint8Array} evaluatedElement
 * @returns {Uint8Array}
 */
export function finalize(input: Uint8Array, blindScalar: Uint8Array, evaluatedElement: Uint8Array): Uint8Array;
/**
 * BlindEvaluate (server side; the SDK only uses it in tests).
 * @param {Uint8Array} serverKey
 * @param {Uint8Array} blindedElement
 */
export function blindEvaluate(serverKey: Uint8Array, blindedElement: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
/**
 * DeriveKeyPair (RFC 9497 section 3.2.1), for the RFC's test key.
 * @param {Uint8Array} seed
 * @param {Uint8Array} info
 * @returns {Uint8Array} the private scalar
 */
export function deriveKeyPair(seed: Uint8Array, info: Uint8Array): Uint8Array;
export class OPRFError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
