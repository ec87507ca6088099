/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function transcriptHash(...parts: Uint8Array[]): Uint8Array;
/**
 * @param {Uint8Array} secret
 * @param {string | Uint8Array} label
 * @param {Uint8Array} context
 * @param {number} length
 * @returns {Uint8Array}
 */
export function expandLabel(secret: Uint8Array, label: string | Uint8Array, context: Uint8Array, length: number): Uint8Array;
/** @param {Uint8Array} secret @param {string | Uint8Array} label @param {Uint8Array} th */
export function deriveSecret(secret: Uint8Array, label: string | Uint8Array, th: Uint8Array): Uint8Array<ArrayBufferLike>;
/** @param {Uint8Array} base @param {Uint8Array} th */
export function finishedMac(base: Uint8Array, th: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
/** @param {Uint8Array} shared @param {Uint8Array} helloTranscript */
export function handshakeSecrets(shared: Uint8Array, helloTranscript: Uint8Array): {
    handshakeSecret: Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
    clientHandshake: Uint8Array<ArrayBufferLike>;
    serverHandshake: Uint8Array<ArrayBufferLike>;
};
/** @param {Uint8Array} handshakeSecret @param {Uint8Array} fullTranscript */
export function applicationSecrets(handshakeSecret: Uint8Array, fullTranscript: Uint8Array): {
    masterSecret: Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
    clientApplication: Uint8Array<ArrayBufferLike>;
    serverApplication: Uint8Array<ArrayBufferLike>;
    exporterMaster: Uint8Array<ArrayBufferLike>;
};
/**
 * RFC 8446 section 7.5 exporter with sigmai labels.
 * @param {Uint8Array} exporterMaster
 * @param {Uint8Array} label
 * @param {Uint8Array} context
 * @param {number} length
 */
export function exportKeyingMaterial(exporterMaster: Uint8Array, label: Uint8Array, context: Uint8Array, length: number): Uint8Array<ArrayBufferLike>;
/** SHA-256 of a server's raw Ed25519 public key: what an app pins. @param {Uint8Array} publicKey */
export function serverKeyHash(publicKey: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
/**
 * RFC 7638 thumbprint of a device or account key.
 * @param {number} keyType
 * @param {Uint8Array} raw
 * @returns {string}
 */
export function thumbprint(keyType: number, raw: Uint8Array): string;
export const VERSION: 1;
export const CLIENT_HELLO: 1;
export const SERVER_HELLO: 2;
export const CLIENT_FINISH: 3;
export const RECORD: 23;
export const KEY_TYPE_ED25519: 1;
export const KEY_TYPE_P256: 2;
export const DEFAULT_MAX_MESSAGE: number;
export const RECORD_OVERHEAD: 18;
/** Any failure of the channel: the connection is closed for good and the peer is not told why. */
export class ProtocolError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
/** One direction's AEAD: the nonce is the IV XOR a sequence number nothing on the wire carries. */
export class RecordProtection {
    /** @param {Uint8Array} secret a traffic secret */
    constructor(secret: Uint8Array);
    key: Uint8Array<ArrayBufferLike>;
    iv: Uint8Array<ArrayBufferLike>;
    sequence: bigint;
    /** @returns {Uint8Array} */
    nextNonce(): Uint8Array;
    /** @param {Uint8Array} plaintext @param {Uint8Array} aad */
    seal(plaintext: Uint8Array, aad: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
    /** @param {Uint8Array} ciphertext @param {Uint8Array} aad */
    open(ciphertext: Uint8Array, aad: Uint8Array): Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
}
/**
 * What a channel and the flows need of a long-term key. DeviceIdentity holds its secret in memory; a
 * keyring (App option `keyring`) may hand one whose secret cannot leave it, such as a non-extractable
 * WebCrypto key, whose `sign` is asynchronous.
 * @typedef {object} SigningIdentity
 * @property {'p256' | 'ed25519'} type
 * @property {number} keyType the type byte of the identity block
 * @property {Uint8Array} publicRaw
 * @property {string} thumbprint
 * @property {Uint8Array} identityBlock
 * @property {(message: Uint8Array) => Uint8Array | Promise<Uint8Array>} sign 64 bytes, as DeviceIdentity's
 */
/** A device's (or an account's) long-term key: ECDSA P-256 or Ed25519. */
export class DeviceIdentity {
    /** @param {'p256' | 'ed25519'} [type] @returns {DeviceIdentity} */
    static generate(type?: "p256" | "ed25519"): DeviceIdentity;
    /** @param {'p256' | 'ed25519'} type @param {Uint8Array} secretKey 32 bytes */
    constructor(type: "p256" | "ed25519", secretKey: Uint8Array);
    type: "p256" | "ed25519";
    keyType: number;
    publicRaw: Uint8Array<ArrayBufferLike> & Uint8Array<ArrayBuffer>;
    /** @private */
    private secretKey;
    /** @returns {{type: 'p256' | 'ed25519', secret: string}} what a store keeps */
    toJSON(): {
        type: "p256" | "ed25519";
        secret: string;
    };
    /** @returns {string} */
    get thumbprint(): string;
    /** The identity block of ClientFinish: type byte and raw public key. */
    get identityBlock(): Uint8Array<ArrayBufferLike>;
    /**
     * 64 bytes: Ed25519 as is; ECDSA over SHA-256 as fixed-width r || s.
     * @param {Uint8Array} message
     * @returns {Uint8Array}
     */
    sign(message: Uint8Array): Uint8Array;
}
/**
 * @typedef {{type: 'handshake-complete', serverPublicKey: Uint8Array, transcriptHash: Uint8Array}
 *   | {type: 'message', data: Uint8Array}} ChannelEvent
 */
/**
 * The app's side of one channel. It knows (pins) the server key hash before it starts; the server is
 * checked against that pin and its signature before the app reveals its own key (SIGMA-I).
 */
export class ClientConnection {
    /**
     * @param {SigningIdentity} identity
     * @param {Uint8Array} pinnedKeyHash
     * @param {{maxMessage?: number, ephemeral?: Uint8Array, random?: Uint8Array}} [options]
     *   ephemeral and random only to reproduce the test vectors
     */
    constructor(identity: SigningIdentity, pinnedKeyHash: Uint8Array, options?: {
        maxMessage?: number;
        ephemeral?: Uint8Array;
        random?: Uint8Array;
    });
    identity: SigningIdentity;
    pinnedKeyHash: Uint8Array<ArrayBufferLike>;
    maxMessage: number;
    /** @private */
    private ephemeral;
    /** @private */
    private random;
    /** @type {'start' | 'wait-server-hello' | 'established' | 'closed'} */
    state: "start" | "wait-server-hello" | "established" | "closed";
    /** @type {Uint8Array[]} */
    outbox: Uint8Array[];
    /** @type {Uint8Array | null} */
    transcriptHash: Uint8Array | null;
    /** @type {Uint8Array | null} */
    serverPublicKey: Uint8Array | null;
    /** @private @type {RecordProtection | null} */
    private sender;
    /** @private @type {RecordProtection | null} */
    private receiver;
    /** @private @type {Uint8Array | null} */
    private exporterMaster;
    /** @private @type {Uint8Array} */
    private hello;
    /** @returns {Uint8Array} the ClientHello frame */
    initiate(): Uint8Array;
    /** @returns {Uint8Array[]} frames to send, in order */
    framesToSend(): Uint8Array[];
    /**
     * Consume one binary WebSocket message. A promise only when the ServerHello needs an identity whose
     * signature is asynchronous.
     * @param {Uint8Array} frame
     * @returns {ChannelEvent[] | Promise<ChannelEvent[]>}
     */
    receive(frame: Uint8Array): ChannelEvent[] | Promise<ChannelEvent[]>;
    /** @private @param {Uint8Array} frame @returns {ChannelEvent[]} */
    private openRecord;
    /** @private @param {Uint8Array} frame @returns {ChannelEvent[] | Promise<ChannelEvent[]>} */
    private serverHello;
    /**
     * @private
     * @param {{handshakeSecret: Uint8Array, clientHandshake: Uint8Array}} secrets
     * @param {Uint8Array} frame the ServerHello
     * @param {Uint8Array} block
     * @param {Uint8Array} deviceSignature
     * @param {Uint8Array} serverPublic
     * @returns {ChannelEvent[]}
     */
    private clientFinish;
    /**
     * Seal one application message.
     * @param {Uint8Array} data
     * @returns {Uint8Array} the record frame
     */
    send(data: Uint8Array): Uint8Array;
    /**
     * Keying material unique to this channel, to bind application statements to it.
     * @param {Uint8Array} label
     * @param {Uint8Array} [context]
     * @param {number} [length]
     */
    exportKeyingMaterial(label: Uint8Array, context?: Uint8Array, length?: number): Uint8Array<ArrayBufferLike>;
    close(): void;
}
/**
 * What a channel and the flows need of a long-term key. DeviceIdentity holds its secret in memory; a
 * keyring (App option `keyring`) may hand one whose secret cannot leave it, such as a non-extractable
 * WebCrypto key, whose `sign` is asynchronous.
 */
export type SigningIdentity = {
    type: "p256" | "ed25519";
    /**
     * the type byte of the identity block
     */
    keyType: number;
    publicRaw: Uint8Array;
    thumbprint: string;
    identityBlock: Uint8Array;
    /**
     * 64 bytes, as DeviceIdentity's
     */
    sign: (message: Uint8Array) => Uint8Array | Promise<Uint8Array>;
};
export type ChannelEvent = {
    type: "handshake-complete";
    serverPublicKey: Uint8Array;
    transcriptHash: Uint8Array;
} | {
    type: "message";
    data: Uint8Array;
};
