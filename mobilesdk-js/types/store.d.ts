/**
 * @typedef {object} Store
 * @property {(key: string) => Promise<any>} get resolves to undefined for a missing key
 * @property {(key: string, value: any) => Promise<void>} set
 * @property {(key: string) => Promise<void>} delete
 */
/** @implements {Store} */
export class MemoryStore implements Store {
    /** @param {Record<string, any>} [initial] */
    constructor(initial?: Record<string, any>);
    /** @private @type {Map<string, string>} */
    private items;
    /** @param {string} key */
    get(key: string): Promise<any>;
    /** @param {string} key @param {any} value */
    set(key: string, value: any): Promise<void>;
    /** @param {string} key */
    delete(key: string): Promise<void>;
}
export type Store = {
    /**
     * resolves to undefined for a missing key
     */
    get: (key: string) => Promise<any>;
    set: (key: string, value: any) => Promise<void>;
    delete: (key: string) => Promise<void>;
};
