// A sigmai channel over a WebSocket: the handshake against the pinned key hash, then one request at a
// time ({"id","op","params"} -> {"id","result"} | {"id","error"}). Works with the browser's WebSocket,
// Node's global one, or the `ws` package (Node 20).

import { fromUtf8, utf8 } from './bytes.js';
import { strictParse } from './json.js';
import { ClientConnection, DEFAULT_MAX_MESSAGE, ProtocolError, RECORD_OVERHEAD } from './sigmai.js';

/** The channel could not be opened or broke; the message says what the person can do. */
export class ChannelError extends Error {
  /** @param {string} message @param {{cause?: unknown}} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = 'ChannelError';
  }
}

/** The service answered a request with an error. */
export class RemoteError extends Error {
  /** @param {string} code @param {string} message @param {number | undefined} [retryAfter] */
  constructor(code, message, retryAfter) {
    super(`${code}: ${message}`);
    this.name = 'RemoteError';
    this.code = code;
    this.remoteMessage = message;
    this.retryAfter = retryAfter;
  }
}

const MAX_ID = 2 ** 53 - 1;

/**
 * @typedef {object} WebSocketLike
 * @property {string} binaryType
 * @property {number} readyState
 * @property {(data: Uint8Array) => void} send
 * @property {(code?: number) => void} close
 * @property {((event: any) => void) | null} onopen
 * @property {((event: any) => void) | null} onmessage
 * @property {((event: any) => void) | null} onclose
 * @property {((event: any) => void) | null} onerror
 */

/** @typedef {new (url: string, options?: any) => WebSocketLike} WebSocketConstructor */

/** @returns {Promise<{ctor: WebSocketConstructor, node: boolean}>} */
async function defaultWebSocket() {
  const inNode = typeof process !== 'undefined' && Boolean(process.versions?.node);
  if (inNode) {
    // In Node the `ws` package, which bounds a message's size before it is buffered in full.
    try {
      const mod = await import('ws');
      return { ctor: /** @type {any} */ (mod.WebSocket ?? mod.default), node: true };
    } catch {
      // fall back to Node's own (22 and later)
    }
  }
  if (typeof globalThis.WebSocket === 'function') {
    return { ctor: /** @type {any} */ (globalThis.WebSocket), node: false };
  }
  throw new ChannelError('no WebSocket implementation: install the "ws" package');
}

/** Frames in order, and a way to wait for the next one. */
class Inbox {
  constructor() {
    /** @type {Uint8Array[]} */
    this.frames = [];
    /** @type {Error | null} */
    this.failure = null;
    /** @type {(() => void) | null} */
    this.wake = null;
  }

  /** @param {Uint8Array} frame */
  push(frame) {
    this.frames.push(frame);
    this.wake?.();
  }

  /** @param {Error} error */
  fail(error) {
    this.failure ??= error;
    this.wake?.();
  }

  /** @param {number} timeoutMs @returns {Promise<Uint8Array>} */
  async next(timeoutMs) {
    while (this.frames.length === 0) {
      if (this.failure) throw this.failure;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.wake = null;
          reject(new ChannelError('the server did not answer in time'));
        }, timeoutMs);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve(undefined);
        };
      });
    }
    return /** @type {Uint8Array} */ (this.frames.shift());
  }
}

/** An authenticated, encrypted channel to one service. */
export class Channel {
  /**
   * @param {WebSocketLike} ws
   * @param {ClientConnection} connection
   * @param {Inbox} inbox
   * @param {number} timeoutMs
   */
  constructor(ws, connection, inbox, timeoutMs) {
    /** @private */
    this.ws = ws;
    /** @private */
    this.connection = connection;
    /** @private */
    this.inbox = inbox;
    /** @private */
    this.timeoutMs = timeoutMs;
    /** @private */
    this.nextId = 1;
    /** The server's Ed25519 public key, proven against the pin in the handshake. */
    this.serverPublicKey = /** @type {Uint8Array} */ (connection.serverPublicKey);
    this.transcriptHash = /** @type {Uint8Array} */ (connection.transcriptHash);
  }

  /**
   * One request, one answer. Throws RemoteError for an error answer, ChannelError when the channel broke.
   * @param {string} op
   * @param {Record<string, unknown>} [params]
   * @returns {Promise<Record<string, any>>}
   */
  async request(op, params = {}) {
    const id = this.nextId++;
    if (id > MAX_ID) throw new ChannelError('too many requests on one channel');
    let response;
    try {
      this.ws.send(this.connection.send(utf8(JSON.stringify({ id, op, params }))));
      const events = await this.connection.receive(await this.inbox.next(this.timeoutMs));
      const event = events[0];
      if (events.length !== 1 || event.type !== 'message') throw new ProtocolError('unexpected event');
      try {
        response = strictParse(fromUtf8(event.data));
      } catch {
        throw new ProtocolError('application message is not strict JSON');
      }
      if (response === null || typeof response !== 'object' || Array.isArray(response)) {
        throw new ProtocolError('application message is not a JSON object');
      }
      if (response.id !== id) throw new ProtocolError('response to another request');
    } catch (error) {
      this.close();
      if (error instanceof ChannelError) throw error;
      throw new ChannelError('the channel to the server broke; try again', { cause: error });
    }
    if (response.error) {
      const { code, message, retry_after: retryAfter } = response.error;
      throw new RemoteError(String(code), String(message), retryAfter);
    }
    if (response.result === null || typeof response.result !== 'object') {
      this.close();
      throw new ChannelError('the server answered without a result');
    }
    return response.result;
  }

  /**
   * Keying material unique to this channel (sigmai exporter).
   * @param {Uint8Array} label
   * @param {Uint8Array} [context]
   * @param {number} [length]
   */
  exportKeyingMaterial(label, context, length) {
    return this.connection.exportKeyingMaterial(label, context, length);
  }

  close() {
    this.connection.close();
    try {
      this.ws.close(1000);
    } catch {
      // already closed
    }
  }
}

/**
 * @typedef {object} ChannelOptions
 * @property {number} [timeout] seconds for connecting, the handshake and each answer (default 10)
 * @property {WebSocketConstructor} [WebSocket] a WebSocket class; default `ws` in Node, else the global
 * @property {number} [maxMessage] largest application message (default 65536)
 */

/**
 * Connect to a ws:// or wss:// URI and run the handshake against the pinned key hash.
 * @param {string} uri
 * @param {import('./sigmai.js').SigningIdentity} identity the key to present (device or account key)
 * @param {Uint8Array} pinnedKeyHash
 * @param {ChannelOptions} [options]
 * @returns {Promise<Channel>}
 */
export async function openChannel(uri, identity, pinnedKeyHash, options = {}) {
  if (!/^wss?:\/\/[^/]/.test(uri)) throw new ChannelError(`not a ws:// or wss:// URI: ${uri}`);
  const timeoutMs = (options.timeout ?? 10) * 1000;
  const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
  let ctor = options.WebSocket;
  let node = false;
  if (!ctor) ({ ctor, node } = await defaultWebSocket());
  const inbox = new Inbox();
  /** @type {WebSocketLike} */
  let ws;
  try {
    ws = node
      ? new ctor(uri, { maxPayload: maxMessage + RECORD_OVERHEAD + 64, handshakeTimeout: timeoutMs })
      : new ctor(uri);
  } catch (error) {
    throw new ChannelError(`cannot reach ${uri}`, { cause: error });
  }
  ws.binaryType = 'arraybuffer';
  const opened = new Promise((resolve, reject) => {
    ws.onopen = () => resolve(undefined);
    ws.onerror = () => reject(new ChannelError(`cannot reach ${uri}`));
    ws.onclose = () => reject(new ChannelError(`cannot reach ${uri}`));
  });
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') {
      // Text is no part of sigmai (docs/sigmai.md section 3).
      inbox.fail(new ChannelError('the server broke the protocol'));
      try {
        ws.close(1003);
      } catch {
        // closing anyway
      }
      return;
    }
    inbox.push(new Uint8Array(event.data));
  };
  let timer;
  try {
    await Promise.race([
      opened,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new ChannelError(`cannot reach ${uri}: timed out`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    try {
      ws.close();
    } catch {
      // never opened
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
  ws.onclose = () => inbox.fail(new ChannelError('the connection was closed'));
  ws.onerror = () => inbox.fail(new ChannelError('the connection failed'));

  const connection = new ClientConnection(identity, pinnedKeyHash, { maxMessage });
  try {
    ws.send(connection.initiate());
    const events = await connection.receive(await inbox.next(timeoutMs));
    if (events[0]?.type !== 'handshake-complete') throw new ProtocolError('no handshake');
    for (const frame of connection.framesToSend()) ws.send(frame);
  } catch (error) {
    connection.close();
    try {
      ws.close();
    } catch {
      // gone already
    }
    throw new ChannelError(
      `could not establish a secure channel with ${uri}: the server is not the one pinned, ` +
        'or the connection broke',
      { cause: error },
    );
  }
  return new Channel(ws, connection, inbox, timeoutMs);
}

/**
 * Open a channel, run `use`, close it whatever happens.
 * @template T
 * @param {Promise<Channel>} opening
 * @param {(channel: Channel) => Promise<T>} use
 * @returns {Promise<T>}
 */
export async function withChannel(opening, use) {
  const channel = await opening;
  try {
    return await use(channel);
  } finally {
    channel.close();
  }
}
