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
export function decodeQR(text: string): QRPayload;
export const PREFIX: "NA1.";
export class QRError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
export type QRPayload = {
    kind: "login" | "enrol" | "sign";
    serverId: string;
    sigmaiUri: string;
    /**
     * the key the app pins for this server
     */
    serverKeyHash: Uint8Array;
    /**
     * the login's QR id, the enrolment id or the transaction id
     */
    itemId: string;
    /**
     * the challenge or the enrolment's one-time secret
     */
    secret: Uint8Array;
    serverName: string;
};
