// The byte strings the app signs and the values it derives from a channel's exporter
// (nextauth_core/statements.py, nextauth_core/evidence.py): the app and the servers must agree on them.

import { lengthPrefixed, utf8 } from './bytes.js';

export const LOGIN_EXPORTER = utf8('EXPORTER-nextauth-login');
export const SFS_PROOF_EXPORTER = utf8('EXPORTER-nextauth-sfs-proof');
export const ENROL_CODE_EXPORTER = utf8('EXPORTER-nextauth-enrol-code');
export const PIN_CHANGE_EXPORTER = utf8('EXPORTER-nextauth-sfs-pin-change');

/**
 * @param {string} qrId
 * @param {Uint8Array} qrChallenge
 * @param {Uint8Array} nsChallenge
 * @param {Uint8Array} channelBinding
 */
export function loginStatement(qrId, qrChallenge, nsChallenge, channelBinding) {
  return lengthPrefixed(utf8('nextauth login v1'), utf8(qrId), qrChallenge, nsChallenge, channelBinding);
}

/**
 * @param {{sfsChallenge: Uint8Array, channelBinding: Uint8Array, audience: string,
 *   nsChallenge: Uint8Array, purpose: string, accountThumbprint: string}} fields
 */
export function sfsProofStatement(fields) {
  return lengthPrefixed(
    utf8('nextauth sfs proof v1'),
    fields.sfsChallenge,
    fields.channelBinding,
    utf8(fields.audience),
    fields.nsChallenge,
    utf8(fields.purpose),
    utf8(fields.accountThumbprint),
  );
}

/**
 * What the old PIN's key signs to set a new verifier: the SFS's challenge, this channel, the new verifier.
 * @param {{sfsChallenge: Uint8Array, channelBinding: Uint8Array, newPinVerifier: Uint8Array}} fields
 */
export function pinChangeStatement(fields) {
  return lengthPrefixed(
    utf8('nextauth sfs pin change v1'),
    fields.sfsChallenge,
    fields.channelBinding,
    fields.newPinVerifier,
  );
}

/**
 * Six digits from the enrolment channel's exporter, computed by the app and ns independently.
 * @param {Uint8Array} channelExport at least 8 bytes
 * @returns {string}
 */
export function confirmationCode(channelExport) {
  let value = 0n;
  for (const byte of channelExport.subarray(0, 8)) value = (value << 8n) | BigInt(byte);
  return (value % 1000000n).toString().padStart(6, '0');
}

/**
 * The decision is signed with the content: an approval cannot be turned into a refusal.
 * @param {Uint8Array} canonicalContent
 * @param {Uint8Array} nsChallenge
 * @param {'approved' | 'declined'} decision
 */
export function signingStatement(canonicalContent, nsChallenge, decision) {
  if (decision !== 'approved' && decision !== 'declined') {
    throw new TypeError('decision must be approved or declined');
  }
  return lengthPrefixed(utf8('nextauth sign v1'), canonicalContent, nsChallenge, utf8(decision));
}
