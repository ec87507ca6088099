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
export function openChannel(uri: string, identity: import("./sigmai.js").SigningIdentity, pinnedKeyHash: Uint8Array, options?: ChannelOptions): Promise<Channel>;
/**
 * Open a channel, run `use`, close it whatever happens.
 * @template T
 * @param {Promise<Channel>} opening
 * @param {(channel: Channel) => Promise<T>} use
 * @returns {Promise<T>}
 */
export function withChannel<T>(opening: Promise<Channel>, use: (channel: Channel) => Promise<T>): Promise<T>;
/** The channel could not be opened or broke; the message says what the person can do. */
export class ChannelError extends Error {
    /** @param {string} message @param {{cause?: unknown}} [options] */
    constructor(message: string, options?: {
        cause?: unknown;
    });
}
/** The service answered a request with an error. */
export class RemoteError extends Error {
    /** @param {string} code @param {string} message @param {number | undefined} [retryAfter] */
    constructor(code: string, message: string, retryAfter?: number | undefined);
    code: string;
    remoteMessage: string;
    retryAfter: number | undefined;
}
/** An authenticated, encrypted channel to one service. */
export class Channel {
    /**
     * @param {WebSocketLike} ws
     * @param {ClientConnection} connection
     * @param {Inbox} inbox
     * @param {number} timeoutMs
     */
    constructor(ws: WebSocketLike, connection: ClientConnection, inbox: Inbox, timeoutMs: number);
    /** @private */
    private ws;
    /** @private */
    private connection;
    /** @private */
    private inbox;
    /** @private */
    private timeoutMs;
    /** @private */
    private nextId;
    /** The server's Ed25519 public key, proven against the pin in the handshake. */
    serverPublicKey: Uint8Array<ArrayBufferLike>;
    transcriptHash: Uint8Array<ArrayBufferLike>;
    /**
     * One request, one answer. Throws RemoteError for an error answer, ChannelError when the channel broke.
     * @param {string} op
     * @param {Record<string, unknown>} [params]
     * @returns {Promise<Record<string, any>>}
     */
    request(op: string, params?: Record<string, unknown>): Promise<Record<string, any>>;
    /**
     * Keying material unique to this channel (sigmai exporter).
     * @param {Uint8Array} label
     * @param {Uint8Array} [context]
     * @param {number} [length]
     */
    exportKeyingMaterial(label: Uint8Array, context?: Uint8Array, length?: number): Uint8Array<ArrayBufferLike>;
    close(): void;
}
export type WebSocketLike = {
    binaryType: string;
    readyState: number;
    send: (data: Uint8Array) => void;
    close: (code?: number) => void;
    onopen: ((event: any) => void) | null;
    onmessage: ((event: any) => void) | null;
    onclose: ((event: any) => void) | null;
    onerror: ((event: any) => void) | null;
};
export type WebSocketConstructor = new (url: string, options?: any) => WebSocketLike;
export type ChannelOptions = {
    /**
     * seconds for connecting, the handshake and each answer (default 10)
     */
    timeout?: number | undefined;
    /**
     * a WebSocket class; default `ws` in Node, else the global
     */
    WebSocket?: WebSocketConstructor | undefined;
    /**
     * largest application message (default 65536)
     */
    maxMessage?: number | undefined;
};
import { ClientConnection } from './sigmai.js';
/** Frames in order, and a way to wait for the next one. */
declare class Inbox {
    /** @type {Uint8Array[]} */
    frames: Uint8Array[];
    /** @type {Error | null} */
    failure: Error | null;
    /** @type {(() => void) | null} */
    wake: (() => void) | null;
    /** @param {Uint8Array} frame */
    push(frame: Uint8Array): void;
    /** @param {Error} error */
    fail(error: Error): void;
    /** @param {number} timeoutMs @returns {Promise<Uint8Array>} */
    next(timeoutMs: number): Promise<Uint8Array>;
}
export {};
