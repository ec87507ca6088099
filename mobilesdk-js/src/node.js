// Node-only parts: a store in one JSON file (mode 0600, replaced atomically on every write).

import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** @typedef {import('./store.js').Store} Store */

/** @implements {Store} */
export class JsonFileStore {
  /** @param {string} path */
  constructor(path) {
    this.path = path;
    /** @private @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }

  /** @private @returns {Promise<Record<string, any>>} */
  async load() {
    try {
      return JSON.parse(await readFile(this.path, 'utf8'));
    } catch (error) {
      if (/** @type {any} */ (error).code === 'ENOENT') return {};
      throw new Error(`${this.path} is not a readable JSON store`, { cause: error });
    }
  }

  /** @private @param {Record<string, any>} data */
  async save(data) {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(data, null, 2));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.path);
  }

  /**
   * Writes one after another, so two updates in flight do not lose each other.
   * @private @template T @param {() => Promise<T>} task @returns {Promise<T>}
   */
  serial(task) {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** @param {string} key */
  async get(key) {
    return (await this.load())[key];
  }

  /** @param {string} key @param {any} value */
  set(key, value) {
    return this.serial(async () => {
      const data = await this.load();
      data[key] = value;
      await this.save(data);
    });
  }

  /** @param {string} key */
  delete(key) {
    return this.serial(async () => {
      const data = await this.load();
      delete data[key];
      await this.save(data);
    });
  }
}
