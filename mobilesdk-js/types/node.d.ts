/** @typedef {import('./store.js').Store} Store */
/** @implements {Store} */
export class JsonFileStore implements Store {
    /** @param {string} path */
    constructor(path: string);
    path: string;
    /** @private @type {Promise<unknown>} */
    private queue;
    /** @private @returns {Promise<Record<string, any>>} */
    private load;
    /** @private @param {Record<string, any>} data */
    private save;
    /**
     * Writes one after another, so two updates in flight do not lose each other.
     * @private @template T @param {() => Promise<T>} task @returns {Promise<T>}
     */
    private serial;
    /** @param {string} key */
    get(key: string): Promise<any>;
    /** @param {string} key @param {any} value */
    set(key: string, value: any): Promise<void>;
    /** @param {string} key */
    delete(key: string): Promise<void>;
}
export type Store = import("./store.js").Store;
