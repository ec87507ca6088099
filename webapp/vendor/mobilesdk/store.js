// Where the SDK keeps its state: a small asynchronous key-value interface with JSON values. The SDK
// ships a memory store (tests, short-lived tools) and, for Node, a JSON file (src/node.js); a web app
// provides IndexedDB, a phone app its keystore-backed storage.

/**
 * @typedef {object} Store
 * @property {(key: string) => Promise<any>} get resolves to undefined for a missing key
 * @property {(key: string, value: any) => Promise<void>} set
 * @property {(key: string) => Promise<void>} delete
 */

/** @implements {Store} */
export class MemoryStore {
  /** @param {Record<string, any>} [initial] */
  constructor(initial = {}) {
    /** @private @type {Map<string, string>} */
    this.items = new Map(Object.entries(initial).map(([k, v]) => [k, JSON.stringify(v)]));
  }

  /** @param {string} key */
  async get(key) {
    const value = this.items.get(key);
    return value === undefined ? undefined : JSON.parse(value);
  }

  /** @param {string} key @param {any} value */
  async set(key, value) {
    // Stored as text so that a caller changing an object later does not change the store.
    this.items.set(key, JSON.stringify(value));
  }

  /** @param {string} key */
  async delete(key) {
    this.items.delete(key);
  }
}
