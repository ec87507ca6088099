// The authenticator's state on this phone, in IndexedDB (one database per origin, "nextauth-authenticator").
//
// What the Mobile SDK keeps (mobilesdk/store.py is the Python original): the device key and the SFS and MC
// this app was set up with (pinned when the app registered, so a later config.json cannot move an
// existing install to another SFS without the person starting over), the second factor's device secret
// and mailbox, and per account its record, its signing key and its encryption key.
//
// Values are stored as structured clones (Uint8Array stays binary). Nothing here is encrypted: a browser
// offers no hardware-backed storage for raw key bytes; docs/web-authenticator.md says what that means.

const DB_NAME = 'nextauth-authenticator';
const DB_VERSION = 1;
const SETTINGS = 'settings'; // key -> value: "device", "services", "secondFactor"
const ACCOUNTS = 'accounts'; // keyPath "id": what the account list shows and the flows need
const KEYS = 'keys'; // key -> value: "account:<id>", "encryption:<id>"

export class StorageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StorageError';
  }
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new StorageError(String(req.error && req.error.message || req.error)));
  });
}

function open(indexedDB) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(SETTINGS)) db.createObjectStore(SETTINGS);
      if (!db.objectStoreNames.contains(ACCOUNTS)) db.createObjectStore(ACCOUNTS, { keyPath: 'id' });
      if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new StorageError('cannot open the app storage: ' + String(req.error)));
    req.onblocked = () => reject(new StorageError('the app is open in another tab: close it and reload'));
  });
}

/** The SDK's store interface, on IndexedDB. Every method is async. */
export class Storage {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /** Opens (and on first use creates) the database; asks the browser to keep it under storage pressure. */
  static async open(scope = globalThis) {
    if (!scope.indexedDB) throw new StorageError('this browser offers no IndexedDB');
    const db = await open(scope.indexedDB);
    if (scope.navigator && scope.navigator.storage && scope.navigator.storage.persist) {
      try {
        await scope.navigator.storage.persist();
      } catch (_) {
        // Best effort only: a browser may refuse, and the app still works until it clears the site's data.
      }
    }
    return new Storage(db);
  }

  _tx(stores, mode, work) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(stores, mode);
      let result;
      Promise.resolve(work(tx)).then((value) => { result = value; }, (err) => { tx.abort(); reject(err); });
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(new StorageError(String(tx.error)));
      tx.onabort = () => reject(new StorageError('write aborted: ' + String(tx.error)));
    });
  }

  async _get(store, key) {
    return this._tx([store], 'readonly', (tx) => request(tx.objectStore(store).get(key)));
  }

  async _put(store, key, value) {
    return this._tx([store], 'readwrite', (tx) => request(
      key === undefined ? tx.objectStore(store).put(value) : tx.objectStore(store).put(value, key)));
  }

  // -- the device (app install) --------------------------------------------------------------------

  /** @returns {Promise<{keyType: string, privateKey: Uint8Array} | undefined>} */
  async device() { return this._get(SETTINGS, 'device'); }

  /** Refuses to replace an existing device key: losing it would orphan the registration at the SFS. */
  async createDevice(device) {
    return this._tx([SETTINGS], 'readwrite', async (tx) => {
      const store = tx.objectStore(SETTINGS);
      if (await request(store.get('device')) !== undefined) throw new StorageError('this app already has a device key');
      await request(store.put(device, 'device'));
    });
  }

  /** @returns {Promise<{ns?: {uri: string}, sfs?: {uri: string, key_hash: string}, mc?: {uri: string, key_hash: string}}>} */
  async services() { return (await this._get(SETTINGS, 'services')) || {}; }

  async saveServices(services) { await this._put(SETTINGS, 'services', services); }

  /** The second factor's device secret, the biometric key if any, the MC mailbox: {} before registering. */
  async secondFactor() { return (await this._get(SETTINGS, 'secondFactor')) || {}; }

  async saveSecondFactor(data) { await this._put(SETTINGS, 'secondFactor', data); }

  // -- accounts ----------------------------------------------------------------------------------------

  /** @returns {Promise<Array<{id: string, server_id: string, server_name: string, sigmai_uri: string,
   *   server_key_hash: string, user_id: string, server_public_key: string, enrolled_at: number}>>} */
  async accounts() {
    const all = await this._tx([ACCOUNTS], 'readonly', (tx) => request(tx.objectStore(ACCOUNTS).getAll()));
    return all.sort((a, b) => (a.enrolled_at || 0) - (b.enrolled_at || 0));
  }

  /** Accounts at the server whose key hash (hex) a code names. */
  async accountsAt(serverKeyHash) {
    return (await this.accounts()).filter((a) => a.server_key_hash === serverKeyHash);
  }

  /** The account record, its signing key and its encryption key in one transaction: all or nothing. */
  async addAccount(record, accountKey, encryptionKey) {
    const stored = { enrolled_at: Date.now(), ...record };
    await this._tx([ACCOUNTS, KEYS], 'readwrite', async (tx) => {
      await request(tx.objectStore(ACCOUNTS).put(stored));
      await request(tx.objectStore(KEYS).put(accountKey, 'account:' + record.id));
      if (encryptionKey !== undefined && encryptionKey !== null) {
        await request(tx.objectStore(KEYS).put(encryptionKey, 'encryption:' + record.id));
      }
    });
    return stored;
  }

  async accountKey(accountId) { return this._get(KEYS, 'account:' + accountId); }

  async encryptionKey(accountId) { return this._get(KEYS, 'encryption:' + accountId); }

  async removeAccount(accountId) {
    await this._tx([ACCOUNTS, KEYS], 'readwrite', async (tx) => {
      await request(tx.objectStore(ACCOUNTS).delete(accountId));
      await request(tx.objectStore(KEYS).delete('account:' + accountId));
      await request(tx.objectStore(KEYS).delete('encryption:' + accountId));
    });
  }

  /** Everything goes: device key, registration, accounts. The person sets the app up anew afterwards. */
  async wipe() {
    await this._tx([SETTINGS, ACCOUNTS, KEYS], 'readwrite', async (tx) => {
      await request(tx.objectStore(SETTINGS).clear());
      await request(tx.objectStore(ACCOUNTS).clear());
      await request(tx.objectStore(KEYS).clear());
    });
  }

  close() { this.db.close(); }
}
