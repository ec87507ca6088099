/**
 * Where the CryptoKeys live: structured-clone storage (IndexedDB in a browser), apart from the JSON store.
 * @typedef {object} CryptoKeyStore
 * @property {(id: string) => Promise<{privateKey: CryptoKey, publicRaw: Uint8Array} | undefined>} getKey
 * @property {(id: string, value: {privateKey: CryptoKey, publicRaw: Uint8Array}) => Promise<void>} putKey
 */
/** A long-term key held by WebCrypto: the SigningIdentity of sigmai.js, with an asynchronous sign. */
export class CryptoKeyIdentity {
    /**
     * @param {'p256' | 'ed25519'} type
     * @param {Uint8Array} publicRaw uncompressed point (P-256) or 32 bytes (Ed25519)
     * @param {CryptoKey} privateKey
     * @param {SubtleCrypto} subtle
     */
    constructor(type: "p256" | "ed25519", publicRaw: Uint8Array, privateKey: CryptoKey, subtle: SubtleCrypto);
    type: "p256" | "ed25519";
    keyType: number;
    publicRaw: Uint8Array<ArrayBufferLike>;
    /** @private */
    private privateKey;
    /** @private */
    private subtle;
    get thumbprint(): string;
    get identityBlock(): Uint8Array<ArrayBuffer>;
    /**
     * 64 bytes, as DeviceIdentity's: WebCrypto's ECDSA gives r || s (IEEE P1363), not DER.
     * @param {Uint8Array} message
     */
    sign(message: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
}
/** A Keyring (see app.js) whose keys are non-extractable CryptoKeys. */
export class WebCryptoKeyring {
    /**
     * @param {CryptoKeyStore} keys
     * @param {{subtle?: SubtleCrypto, random?: (bytes: Uint8Array) => Uint8Array}} [options]
     */
    constructor(keys: CryptoKeyStore, options?: {
        subtle?: SubtleCrypto;
        random?: (bytes: Uint8Array) => Uint8Array;
    });
    keys: CryptoKeyStore;
    /** @type {SubtleCrypto | undefined} */
    subtle: SubtleCrypto | undefined;
    random: (bytes: Uint8Array) => Uint8Array;
    /**
     * A new non-extractable key pair, or null where WebCrypto cannot make one of this type.
     * @param {'p256' | 'ed25519'} type
     * @returns {Promise<{stored: import('./app.js').StoredKey, identity: CryptoKeyIdentity} | null>}
     */
    generate(type: "p256" | "ed25519"): Promise<{
        stored: import("./app.js").StoredKey;
        identity: CryptoKeyIdentity;
    } | null>;
    /**
     * @param {import('./app.js').StoredKey} stored
     * @returns {Promise<CryptoKeyIdentity>}
     */
    load(stored: import("./app.js").StoredKey): Promise<CryptoKeyIdentity>;
}
/**
 * Where the CryptoKeys live: structured-clone storage (IndexedDB in a browser), apart from the JSON store.
 */
export type CryptoKeyStore = {
    getKey: (id: string) => Promise<{
        privateKey: CryptoKey;
        publicRaw: Uint8Array;
    } | undefined>;
    putKey: (id: string, value: {
        privateKey: CryptoKey;
        publicRaw: Uint8Array;
    }) => Promise<void>;
};
