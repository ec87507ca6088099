/**
 * Single-shot HPKE seal: enc || ciphertext.
 * @param {Uint8Array} recipientPublic
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} info
 * @param {Uint8Array} [ephemeral] only to reproduce test vectors
 */
export function hpkeSeal(recipientPublic: Uint8Array, plaintext: Uint8Array, info: Uint8Array, ephemeral?: Uint8Array): Uint8Array<ArrayBufferLike>;
/**
 * @param {Uint8Array} recipientSecret
 * @param {Uint8Array} sealed enc || ciphertext
 * @param {Uint8Array} info
 */
export function hpkeOpen(recipientSecret: Uint8Array, sealed: Uint8Array, info: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
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
export function openEnvelope(envelope: Uint8Array, recipientSecret: Uint8Array, senderPublic: Uint8Array, senderKeyHash: Uint8Array, mailbox: string, now?: number): Record<string, any>;
/**
 * What ns does (the SDK uses it only in tests, to play the server).
 * @param {Uint8Array} recipientPublic
 * @param {Uint8Array} senderSecret
 * @param {Uint8Array} senderKeyHash
 * @param {string} mailbox
 * @param {Record<string, any>} message
 * @param {{ttl?: number, now?: number}} [options]
 */
export function sealEnvelope(recipientPublic: Uint8Array, senderSecret: Uint8Array, senderKeyHash: Uint8Array, mailbox: string, message: Record<string, any>, options?: {
    ttl?: number;
    now?: number;
}): Uint8Array<ArrayBufferLike>;
export const SUITE_V1: 1;
export class EnvelopeError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
