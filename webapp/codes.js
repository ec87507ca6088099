// What a QR code (or an app-to-app link) carries: "NA1." and base64url of compact JSON
// (nextauth_core/qr.py is the reference). The app reads the kind and the server from it to pick a screen;
// the SDK checks everything else when it uses the code, and ns decides whether it is still valid.

const PREFIX = 'NA1.';
const MAX_PAYLOAD = 1024;
const KINDS = ['login', 'enrol', 'sign'];

export class CodeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CodeError';
  }
}

function unb64url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new CodeError('This nextAuth code is damaged.');
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  let binary;
  try {
    binary = atob(padded);
  } catch (_) {
    throw new CodeError('This nextAuth code is damaged.');
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The code inside what was scanned, pasted or linked: a bare code, an app link "<scheme>:NA1...",
 * or the app's own link fragment "login=NA1...". */
export function extractCode(text) {
  let code = String(text || '').trim();
  if (code.startsWith('#')) code = code.slice(1);
  const fromFragment = /^(?:login|code)=(.*)$/.exec(code);
  if (fromFragment) code = decodeURIComponent(fromFragment[1]);
  if (!code.startsWith(PREFIX) && code.includes(':')) code = code.slice(code.indexOf(':') + 1);
  return code;
}

/** @returns {{kind: string, serverId: string, sigmaiUri: string, serverKeyHash: string, serverName: string,
 *   itemId: string, text: string}} serverKeyHash in hex. Throws CodeError with a sentence for the person. */
export function readCode(text) {
  const code = extractCode(text);
  if (!code.startsWith(PREFIX) || code.length > MAX_PAYLOAD) throw new CodeError('This is not a nextAuth code.');
  let body;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(unb64url(code.slice(PREFIX.length))));
  } catch (err) {
    if (err instanceof CodeError) throw err;
    throw new CodeError('This nextAuth code is damaged.');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new CodeError('This nextAuth code is damaged.');
  for (const field of ['t', 'sid', 'u', 'k', 'i', 'x']) {
    if (typeof body[field] !== 'string') throw new CodeError('This nextAuth code is incomplete.');
  }
  if (!KINDS.includes(body.t)) throw new CodeError('This app cannot use this kind of nextAuth code.');
  const keyHash = unb64url(body.k);
  if (keyHash.length !== 32) throw new CodeError('This nextAuth code is damaged.');
  return {
    kind: body.t,
    serverId: body.sid,
    sigmaiUri: body.u,
    serverKeyHash: Array.from(keyHash, (b) => b.toString(16).padStart(2, '0')).join(''),
    serverName: typeof body.n === 'string' ? body.n : '',
    itemId: body.i,
    text: code,
  };
}
