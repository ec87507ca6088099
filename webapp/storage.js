// The authenticator's state on this phone, in IndexedDB ("nextauth-authenticator", one per origin).
//
// This is the store the JavaScript Mobile SDK asks for (mobilesdk-js/src/store.js): three async methods
// with JSON values, get(key) (undefined when missing), set(key, value), delete(key). The SDK keeps under
// it the device key, the SFS and MC it pinned when the app was set up, the second factor's device secret
// and mailbox, and the accounts with their keys. Values are kept as JSON text, as the SDK's memory store
// does, so a caller that changes an object afterwards does not change what was stored.
//
// Where the browser's WebCrypto can, the device key and the account keys are not here as bytes: they are
// non-extractable CryptoKeys, kept as such (structured clone, never JSON) in a second object store, "keys",
// and the SDK's records name them (mobilesdk-js/src/webcrypto.js). The rest (the PIN's device secret, the
// accounts' envelope keys) is not encrypted: docs/web-authenticator.md says what that means.

const DB_NAME = 'nextauth-authenticator';
const DB_VERSION = 2; // 2: the "keys" store
const STORE = 'sdk';
const KEYS = 'keys';

export class StorageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StorageError';
  }
}

function done(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new StorageError(String((req.error && req.error.message) || req.error)));
  });
}

function openDatabase(indexedDB) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      for (const name of [STORE, KEYS]) {
        if (!req.result.objectStoreNames.contains(name)) req.result.createObjectStore(name);
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new StorageError(`cannot open the app's storage (${req.error})`));
    req.onblocked = () => reject(new StorageError('the app is open in another tab: close it and reload'));
  });
}

/** The SDK's Store over IndexedDB. Each call is one transaction, committed before the promise resolves. */
export class Storage {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
    // Another tab that upgrades the database must not wait for this one forever.
    db.onversionchange = () => db.close();
  }

  /** Opens (on first use creates) the database, and asks the browser to keep it under storage pressure. */
  static async open(scope = globalThis) {
    if (!scope.indexedDB) throw new StorageError('this browser offers no IndexedDB');
    const storage = new Storage(await openDatabase(scope.indexedDB));
    if (scope.navigator && scope.navigator.storage && scope.navigator.storage.persist) {
      // Best effort: a browser may refuse, and then the keys last until the site's data is cleared.
      storage.persistent = await scope.navigator.storage.persist().catch(() => false);
    }
    return storage;
  }

  _run(mode, work, name = STORE) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(name, mode);
      let result;
      done(work(tx.objectStore(name))).then((value) => { result = value; }, () => {});
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(new StorageError(String(tx.error)));
      tx.onabort = () => reject(new StorageError(`not stored: ${tx.error}`));
    });
  }

  /** @param {string} key @returns {Promise<any>} */
  async get(key) {
    const text = await this._run('readonly', (store) => store.get(key));
    return text === undefined ? undefined : JSON.parse(text);
  }

  /** @param {string} key @param {any} value */
  async set(key, value) {
    await this._run('readwrite', (store) => store.put(JSON.stringify(value), key));
  }

  /** @param {string} key */
  async delete(key) {
    await this._run('readwrite', (store) => store.delete(key));
  }

  /** A CryptoKey pair's record, as stored (the browser clones CryptoKeys without exposing their bytes). */
  async getKey(id) {
    return this._run('readonly', (store) => store.get(id), KEYS);
  }

  async putKey(id, value) {
    await this._run('readwrite', (store) => store.put(value, id), KEYS);
  }

  /** Everything goes: device key, registration, accounts. The app is set up anew afterwards. */
  async wipe() {
    await this._run('readwrite', (store) => store.clear());
    await this._run('readwrite', (store) => store.clear(), KEYS);
  }

  close() {
    this.db.close();
  }
}
