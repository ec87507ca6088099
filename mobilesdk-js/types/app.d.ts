/**
 * What a phone's screen says of who asks (ns checked each member: one line of plain text).
 * @param {Record<string, any>} context
 * @returns {string[]}
 */
export function contextLines(context: Record<string, any>): string[];
/** A flow stopped; the message tells the person what to do. */
export class FlowError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
/** The app on one phone. Its store holds the device key, the SFS and MC pins, and the accounts. */
export class App {
    /**
     * @param {import('./store.js').Store} store
     * @param {AppOptions} [options]
     */
    constructor(store: import("./store.js").Store, options?: AppOptions);
    store: import("./store.js").Store;
    options: AppOptions;
    /**
     * Create the device key (once) and set the SFS and MC this app uses.
     * @param {{sfs?: ServiceEndpoint, mc?: ServiceEndpoint, keyType?: 'p256' | 'ed25519'}} [config]
     */
    init(config?: {
        sfs?: ServiceEndpoint;
        mc?: ServiceEndpoint;
        keyType?: "p256" | "ed25519";
    }): Promise<{
        device_created: boolean;
        device_thumbprint: string;
        device_key_type: "p256" | "ed25519";
        services: any;
    }>;
    /** @returns {Promise<SigningIdentity>} */
    device(): Promise<SigningIdentity>;
    /**
     * A new long-term key (the device key, an account key): made in the keyring where it can hold one of
     * this type (a browser's non-extractable WebCrypto key), else here, its secret kept in the store.
     * @private
     * @param {'p256' | 'ed25519'} type
     * @returns {Promise<{stored: StoredKey, identity: SigningIdentity}>}
     */
    private newKey;
    /**
     * @private
     * @param {StoredKey} stored what newKey() gave to keep
     * @returns {Promise<SigningIdentity>}
     */
    private loadKey;
    /** @param {'sfs' | 'mc'} name @returns {Promise<ServiceEndpoint>} */
    service(name: "sfs" | "mc"): Promise<ServiceEndpoint>;
    status(): Promise<{
        device_thumbprint: string;
        device_key_type: "p256" | "ed25519";
        services: any;
    }>;
    /**
     * @param {string} uri @param {SigningIdentity} identity @param {string | Uint8Array} keyHash
     */
    channel(uri: string, identity: SigningIdentity, keyHash: string | Uint8Array): Promise<import("./channel.js").Channel>;
    /** @param {'sfs' | 'mc'} name */
    serviceChannel(name: "sfs" | "mc"): Promise<import("./channel.js").Channel>;
    /**
     * Open a channel to a service (by name or URI and pin) and ask who answered.
     * @param {'sfs' | 'mc' | ServiceEndpoint} target
     */
    hello(target: "sfs" | "mc" | ServiceEndpoint): Promise<{
        uri: string;
        server_public_key: string;
        server_key_hash: string;
        transcript_hash: string;
        server: Record<string, any>;
    }>;
    /** @returns {Promise<Record<string, any>>} */
    secondFactor(): Promise<Record<string, any>>;
    /**
     * Register this app's PIN (and optionally a biometric key) at the SFS, and a mailbox at the MC.
     * For Web Push, `pushToken` is the browser's subscription (`JSON.stringify(subscription)`), made with
     * the MC's key from webpushKey().
     * @param {string} pin
     * @param {{biometric?: boolean, pushProvider?: 'fcm' | 'apns' | 'webpush' | 'none', pushToken?: string | null}} [options]
     */
    register(pin: string, options?: {
        biometric?: boolean;
        pushProvider?: "fcm" | "apns" | "webpush" | "none";
        pushToken?: string | null;
    }): Promise<{
        registered: boolean;
        biometric: boolean;
        max_attempts: any;
        mailbox: string | null;
    }>;
    /**
     * Replace the PIN at the SFS, proving the old one; a wrong old PIN counts as one at login does.
     * The device secret stays and only the SFS's verifier changes, so nothing here is written but the
     * lock status: a lost answer cannot leave the phone and the SFS disagreeing.
     * @param {string} oldPin
     * @param {string} newPin
     * @returns {Promise<{changed: boolean, max_attempts: number | null}>}
     */
    changePin(oldPin: string, newPin: string): Promise<{
        changed: boolean;
        max_attempts: number | null;
    }>;
    /** @private @param {unknown} error what the SFS said about a PIN, kept for lockStatus() */
    private noteRefusal;
    /**
     * The MC's VAPID public key (base64url, an uncompressed P-256 point): a web app subscribes to Web Push
     * with it as `applicationServerKey`, since the browser's push service takes pushes for the subscription
     * only when they are signed with the key it was made for. Asked over the pinned MC channel, so a
     * network in between cannot hand the app another key.
     * @returns {Promise<string>}
     */
    webpushKey(): Promise<string>;
    /**
     * Change how the MC wakes this app (a new push token, a Web Push subscription made after set-up, or
     * 'none'); the mailbox and the token ns holds for it stay.
     * @param {'fcm' | 'apns' | 'webpush' | 'none'} provider
     * @param {string | null} pushToken for 'webpush', the subscription's JSON
     */
    setPush(provider: "fcm" | "apns" | "webpush" | "none", pushToken: string | null): Promise<{
        mailbox: string;
        push_provider: string;
    }>;
    /** @param {string} provider @param {string | null} pushToken */
    registerMailbox(provider: string, pushToken: string | null): Promise<{
        key_hash: string;
        mailbox: string;
        token: string;
    }>;
    /**
     * What the app last heard from the SFS about its PIN: attempts left, or locked for good.
     * @returns {Promise<LockStatus>}
     */
    lockStatus(): Promise<LockStatus>;
    /** @private @param {Record<string, any>} changes */
    private noteSecondFactor;
    /**
     * Check the second factor at the SFS and get its attestation for ns.
     * @param {{pin?: string | null, audience: string, nsChallenge: Uint8Array, purpose: 'login' | 'sign' | 'enrol',
     *   account: SigningIdentity}} request `pin` null or absent: the biometric
     * @returns {Promise<string>} the attestation (a JWS)
     */
    attest({ pin, audience, nsChallenge, purpose, account }: {
        pin?: string | null;
        audience: string;
        nsChallenge: Uint8Array;
        purpose: "login" | "sign" | "enrol";
        account: SigningIdentity;
    }): Promise<string>;
    /** @returns {Promise<AccountRecord[]>} */
    accountRecords(): Promise<AccountRecord[]>;
    /** The accounts without their private keys. */
    accounts(): Promise<{
        id: string;
        server_id: string;
        server_name: string;
        sigmai_uri: string;
        /**
         * hex, pinned from the enrolment QR
         */
        server_key_hash: string;
        /**
         * hex, proven against the pin in the enrolment handshake
         */
        server_public_key: string;
        user_id: string;
    }[]>;
    /** @param {Uint8Array} keyHash */
    accountsAt(keyHash: Uint8Array): Promise<AccountRecord[]>;
    /** @param {AccountRecord} record @returns {Promise<SigningIdentity>} */
    accountKey(record: AccountRecord): Promise<SigningIdentity>;
    /** @param {AccountRecord} record */
    addAccount(record: AccountRecord): Promise<void>;
    /**
     * What the camera saw: an enrolment, a login or a signing request.
     * @param {string} text the QR payload or an app link
     * @param {{pin?: string | null, approve?: boolean, accountId?: string | null}} [options]
     */
    scan(text: string, options?: {
        pin?: string | null;
        approve?: boolean;
        accountId?: string | null;
    }): Promise<{
        action: string;
        server: any;
        userid: any;
        account: any;
        confirmation_code: string;
        next: string;
    } | {
        action: string;
        server: any;
        shown: any;
        result: any;
        transaction: any;
    } | {
        result: string;
    }>;
    /**
     * Enrol a new account with the code from the QR; ns's key is pinned from the QR's hash.
     * @param {import('./qr.js').QRPayload} payload
     * @param {{pin?: string | null}} options
     */
    enrol(payload: import("./qr.js").QRPayload, { pin }: {
        pin?: string | null;
    }): Promise<{
        action: string;
        server: any;
        userid: any;
        account: any;
        confirmation_code: string;
        next: string;
    }>;
    /**
     * Log in (QR or push). The newest usable account at that server unless `accountId` says which.
     * @param {import('./qr.js').QRPayload} payload
     * @param {{pin?: string | null, approve?: boolean, accountId?: string | null, number?: number | null}} options
     */
    login(payload: import("./qr.js").QRPayload, { pin, approve, accountId, number }: {
        pin?: string | null;
        approve?: boolean;
        accountId?: string | null;
        number?: number | null;
    }): Promise<{
        result: string;
    } | {
        result: string;
        session: any;
    }>;
    /**
     * @private
     * @param {import('./channel.js').Channel} ns
     * @param {AccountRecord} record
     * @param {SigningIdentity} identity
     * @param {import('./qr.js').QRPayload} payload
     * @param {Record<string, any>} started
     * @param {{pin?: string | null, approve: boolean, number: number | null}} options
     */
    private finishLogin;
    /**
     * Show the typed fields, then sign exactly the canonical bytes ns fixed, with the decision.
     * @param {import('./qr.js').QRPayload} payload
     * @param {{pin?: string | null, approve?: boolean, accountId?: string | null,
     *   review?: (fields: Record<string, string>) => boolean | Promise<boolean>}} options
     *   `review` sees the fields before anything is signed and may still decline
     */
    sign(payload: import("./qr.js").QRPayload, { pin, approve, accountId, review }: {
        pin?: string | null;
        approve?: boolean;
        accountId?: string | null;
        review?: (fields: Record<string, string>) => boolean | Promise<boolean>;
    }): Promise<{
        action: string;
        server: any;
        shown: any;
        result: any;
        transaction: any;
    }>;
    /**
     * Pull the mailbox and open every envelope this app can; each is checked against the server key
     * pinned for its account, so a message the MC altered or a stranger sent is dropped.
     */
    inbox(): Promise<Record<string, any>[]>;
    /**
     * @private
     * @param {AccountRecord[]} records
     * @param {string} mailbox
     * @param {Record<string, any>} message
     */
    private openMessage;
    /**
     * Remove requests from the mailbox once answered: ns used each up when the app started it, so the inbox
     * then lists only what still waits. Unknown ids are ignored by the MC.
     * @param {string[]} ids
     * @returns {Promise<number>} how many the MC deleted
     */
    ack(ids: string[]): Promise<number>;
    /**
     * Answer a login or signing request from the inbox. A login needs the number the login page shows.
     * @param {string} messageId
     * @param {{number?: number | null, pin?: string | null, decline?: boolean}} options
     */
    approve(messageId: string, { number, pin, decline }: {
        number?: number | null;
        pin?: string | null;
        decline?: boolean;
    }): Promise<{
        action: string;
        server: any;
        shown: any;
        result: any;
        transaction: any;
    } | {
        result: string;
    }>;
    /**
     * End the sessions of this app's accounts (or of one).
     * @param {{accountId?: string | null}} [options]
     */
    logout({ accountId }?: {
        accountId?: string | null;
    }): Promise<{
        ended: number;
    }>;
}
export type ServiceEndpoint = {
    /**
     * ws:// or wss:// sigmai URI
     */
    uri: string;
    /**
     * hex SHA-256 of the service's Ed25519 key: the pin
     */
    key_hash: string;
};
export type AccountRecord = {
    id: string;
    server_id: string;
    server_name: string;
    sigmai_uri: string;
    /**
     * hex, pinned from the enrolment QR
     */
    server_key_hash: string;
    /**
     * hex, proven against the pin in the enrolment handshake
     */
    server_public_key: string;
    user_id: string;
    /**
     * the account key (private, or a keyring's handle to it)
     */
    key: StoredKey;
    /**
     * base64url X25519 private key for push envelopes
     */
    encryption_key?: string | undefined;
};
/**
 * A long-term key as the store keeps it: the secret itself (base64url), or, for a key made by a keyring,
 * the keyring's handle (its `keyring` entry) and whatever it adds, never the secret.
 */
export type StoredKey = {
    type: "p256" | "ed25519";
    secret?: string;
    keyring?: string;
} & Record<string, unknown>;
/**
 * Where long-term keys are made and held when not in the store: a browser's WebCrypto with
 * non-extractable keys, for one. `generate` answers null for a type it cannot hold; the App then makes
 * the key itself.
 */
export type Keyring = {
    generate: (type: "p256" | "ed25519") => Promise<{
        stored: StoredKey;
        identity: SigningIdentity;
    } | null>;
    load: (stored: StoredKey) => Promise<SigningIdentity>;
};
export type AppOptions = import("./channel.js").ChannelOptions & {
    keyring?: Keyring;
};
export type SigningIdentity = import("./sigmai.js").SigningIdentity;
export type LockStatus = {
    registered: boolean;
    /**
     * the SFS locked this app instance for good (too many wrong PINs)
     */
    locked: boolean;
    /**
     * wrong PINs the SFS still allows, as last heard
     */
    attempts_left: number | null;
    max_attempts: number | null;
};
import { ChannelError } from './channel.js';
import { RemoteError } from './channel.js';
export { ChannelError, RemoteError };
