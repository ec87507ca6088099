// What a QR code (or an app link) carries from ns to the app: "NA1." and base64url of compact JSON
// (nextauth_core/qr.py).

import { fromUtf8, unb64url } from './bytes.js';
import { strictParse } from './json.js';

export const PREFIX = 'NA1.';
const MAX_PAYLOAD = 1024;
const KINDS = ['login', 'enrol', 'sign'];

export class QRError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'QRError';
  }
}

/**
 * @typedef {object} QRPayload
 * @property {'login' | 'enrol' | 'sign'} kind
 * @property {string} serverId
 * @property {string} sigmaiUri
 * @property {Uint8Array} serverKeyHash the key the app pins for this server
 * @property {string} itemId the login's QR id, the enrolment id or the transaction id
 * @property {Uint8Array} secret the challenge or the enrolment's one-time secret
 * @property {string} serverName
 */

/**
 * @param {string} text
 * @returns {QRPayload}
 */
export function decodeQR(text) {
  text = String(text).trim();
  if (text.includes(':') && !text.startsWith(PREFIX)) text = text.slice(text.indexOf(':') + 1);
  if (!text.startsWith(PREFIX) || text.length > MAX_PAYLOAD) throw new QRError('this is not a nextAuth code');
  let body;
  try {
    body = strictParse(fromUtf8(unb64url(text.slice(PREFIX.length))), 4);
  } catch {
    throw new QRError('this nextAuth code is damaged');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new QRError('this nextAuth code is damaged');
  }
  for (const key of ['t', 'sid', 'u', 'k', 'i', 'x']) {
    if (!(key in body)) throw new QRError('this nextAuth code is incomplete');
  }
  let serverKeyHash;
  let secret;
  try {
    serverKeyHash = unb64url(String(body.k));
    secret = unb64url(String(body.x));
  } catch {
    throw new QRError('this nextAuth code is damaged');
  }
  const payload = {
    kind: /** @type {'login' | 'enrol' | 'sign'} */ (String(body.t)),
    serverId: String(body.sid),
    sigmaiUri: String(body.u),
    serverKeyHash,
    itemId: String(body.i),
    secret,
    serverName: String(body.n ?? ''),
  };
  if (!KINDS.includes(payload.kind)) {
    throw new QRError('this nextAuth code asks for something this app cannot do');
  }
  if (serverKeyHash.length !== 32 || secret.length < 16 || secret.length > 64) {
    throw new QRError('this nextAuth code is damaged');
  }
  if (!/^wss?:\/\//.test(payload.sigmaiUri)) {
    throw new QRError('this nextAuth code points to an unsupported address');
  }
  return payload;
}
