// The WebCrypto keyring: keys whose private half cannot be exported, whose signatures are the ones the
// servers check (ECDSA P-256 as r || s over SHA-256, Ed25519), and the App's fallback where WebCrypto
// cannot make the key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { App, MemoryStore, WebCryptoKeyring, b64url, thumbprint, KEY_TYPE_P256 } from '../src/index.js';

function keyStore() {
  const held = new Map();
  return {
    held,
    getKey: async (id) => held.get(id),
    putKey: async (id, value) => {
      held.set(id, value);
    },
  };
}

const message = new TextEncoder().encode('sigmai client signature content');

test('a P-256 key is made non-extractable and signs as the servers expect', async () => {
  const keys = keyStore();
  const keyring = new WebCryptoKeyring(keys, { subtle: webcrypto.subtle });
  const made = await keyring.generate('p256');
  assert.equal(made.stored.secret, undefined);
  assert.equal(made.stored.keyring, 'webcrypto');
  const { privateKey, publicRaw } = keys.held.get(made.stored.id);
  assert.equal(privateKey.extractable, false);
  for (const format of ['pkcs8', 'jwk']) {
    await assert.rejects(webcrypto.subtle.exportKey(format, privateKey), /not extractable/i);
  }
  assert.equal(publicRaw.length, 65);
  assert.equal(made.identity.thumbprint, thumbprint(KEY_TYPE_P256, publicRaw));
  const loaded = await keyring.load(made.stored);
  const signature = await loaded.sign(message);
  assert.equal(signature.length, 64);
  assert.ok(p256.verify(signature, message, publicRaw, { prehash: true, lowS: false, format: 'compact' }));
  assert.ok(!p256.verify(signature, new Uint8Array(8), publicRaw, { prehash: true, lowS: false }));
});

test('an Ed25519 key too, where WebCrypto has the algorithm', async () => {
  const keyring = new WebCryptoKeyring(keyStore(), { subtle: webcrypto.subtle });
  const made = await keyring.generate('ed25519');
  if (made === null) return; // an older runtime without Ed25519: the App falls back, tested below
  const signature = await made.identity.sign(message);
  assert.ok(ed25519.verify(signature, message, made.identity.publicRaw));
});

test('a key gone from storage, or a record that does not match it, is refused', async () => {
  const keys = keyStore();
  const keyring = new WebCryptoKeyring(keys, { subtle: webcrypto.subtle });
  const made = await keyring.generate('p256');
  await assert.rejects(
    keyring.load({ ...made.stored, public: b64url(new Uint8Array(65)) }),
    /does not match/,
  );
  keys.held.clear();
  await assert.rejects(keyring.load(made.stored), /gone/);
});

test('the App keeps its keys in the keyring, and makes them itself where WebCrypto cannot', async () => {
  const store = new MemoryStore();
  const app = new App(store, { keyring: new WebCryptoKeyring(keyStore(), { subtle: webcrypto.subtle }) });
  const started = await app.init({});
  const device = await store.get('device');
  assert.equal(device.keyring, 'webcrypto');
  assert.equal(device.secret, undefined);
  assert.equal((await app.device()).thumbprint, started.device_thumbprint);

  const plain = new MemoryStore();
  // A page over plain http has no crypto.subtle.
  const without = new App(plain, { keyring: new WebCryptoKeyring(keyStore(), { subtle: undefined }) });
  await without.init({});
  assert.equal(typeof (await plain.get('device')).secret, 'string');
  // A record of the keyring's without the keyring: said plainly, not a crash.
  await assert.rejects(new App(store).device(), /keyring this app was not given/);
});
