/**
 * @param {string} qrId
 * @param {Uint8Array} qrChallenge
 * @param {Uint8Array} nsChallenge
 * @param {Uint8Array} channelBinding
 */
export function loginStatement(qrId: string, qrChallenge: Uint8Array, nsChallenge: Uint8Array, channelBinding: Uint8Array): Uint8Array<ArrayBufferLike>;
/**
 * @param {{sfsChallenge: Uint8Array, channelBinding: Uint8Array, audience: string,
 *   nsChallenge: Uint8Array, purpose: string, accountThumbprint: string}} fields
 */
export function sfsProofStatement(fields: {
    sfsChallenge: Uint8Array;
    channelBinding: Uint8Array;
    audience: string;
    nsChallenge: Uint8Array;
    purpose: string;
    accountThumbprint: string;
}): Uint8Array<ArrayBufferLike>;
/**
 * What the old PIN's key signs to set a new verifier: the SFS's challenge, this channel, the new verifier.
 * @param {{sfsChallenge: Uint8Array, channelBinding: Uint8Array, newPinVerifier: Uint8Array}} fields
 */
export function pinChangeStatement(fields: {
    sfsChallenge: Uint8Array;
    channelBinding: Uint8Array;
    newPinVerifier: Uint8Array;
}): Uint8Array<ArrayBufferLike>;
/**
 * Six digits from the enrolment channel's exporter, computed by the app and ns independently.
 * @param {Uint8Array} channelExport at least 8 bytes
 * @returns {string}
 */
export function confirmationCode(channelExport: Uint8Array): string;
/**
 * The decision is signed with the content: an approval cannot be turned into a refusal.
 * @param {Uint8Array} canonicalContent
 * @param {Uint8Array} nsChallenge
 * @param {'approved' | 'declined'} decision
 */
export function signingStatement(canonicalContent: Uint8Array, nsChallenge: Uint8Array, decision: "approved" | "declined"): Uint8Array<ArrayBufferLike>;
export const LOGIN_EXPORTER: Uint8Array<ArrayBufferLike>;
export const SFS_PROOF_EXPORTER: Uint8Array<ArrayBufferLike>;
export const ENROL_CODE_EXPORTER: Uint8Array<ArrayBufferLike>;
export const PIN_CHANGE_EXPORTER: Uint8Array<ArrayBufferLike>;
