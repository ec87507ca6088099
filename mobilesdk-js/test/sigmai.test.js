import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { fromHex, toHex } from '../src/bytes.js';
import {
  ClientConnection,
  DeviceIdentity,
  ProtocolError,
  RecordProtection,
  applicationSecrets,
  handshakeSecrets,
  transcriptHash,
} from '../src/sigmai.js';

const vectors = JSON.parse(
  readFileSync(new URL('../../docs/sigmai-test-vectors.json', import.meta.url), 'utf8'),
);
const inputs = vectors.inputs;

/** A client fixed to the vectors' keys and randoms. */
function vectorClient(name) {
  const device =
    name === 'ed25519'
      ? new DeviceIdentity('ed25519', fromHex(inputs.device_ed25519_seed))
      : new DeviceIdentity('p256', fromHex(inputs.device_p256_private_scalar));
  return new ClientConnection(device, fromHex(inputs.server_key_hash), {
    ephemeral: fromHex(inputs.client_ephemeral_x25519_private),
    random: fromHex(inputs.client_random),
  });
}

for (const name of ['ed25519', 'p256']) {
  const v = vectors.handshakes[name];

  test(`sigmai vectors (${name}): the client produces the recorded frames and secrets`, () => {
    const client = vectorClient(name);
    assert.equal(toHex(client.identity.publicRaw), v.device_public_key);
    assert.equal(client.identity.thumbprint, v.device_thumbprint);
    assert.equal(toHex(client.initiate()), v.client_hello);
    const events = client.receive(fromHex(v.server_hello));
    assert.equal(events[0].type, 'handshake-complete');
    assert.equal(toHex(events[0].serverPublicKey), inputs.server_public_key);
    const [finish] = client.framesToSend();
    assert.equal(toHex(finish), v.client_finish);
    assert.equal(toHex(client.transcriptHash), v.transcript_hash);
    assert.equal(toHex(client.send(fromHex(inputs.client_message))), v.client_record_0);
    const [message] = client.receive(fromHex(v.server_record_0));
    assert.equal(toHex(message.data), inputs.server_message);
    const exported = client.exportKeyingMaterial(
      fromHex(inputs.exporter_label),
      fromHex(inputs.exporter_context),
      inputs.exporter_length,
    );
    assert.equal(toHex(exported), v.exporter_output);
  });

  test(`sigmai vectors (${name}): every intermediate secret`, () => {
    const shared = x25519.getSharedSecret(
      fromHex(inputs.client_ephemeral_x25519_private),
      x25519.getPublicKey(fromHex(inputs.server_ephemeral_x25519_private)),
    );
    assert.equal(toHex(shared), v.shared_secret);
    const hs = handshakeSecrets(
      shared,
      transcriptHash(fromHex(v.client_hello), fromHex(v.server_hello).subarray(0, 66)),
    );
    assert.equal(toHex(hs.handshakeSecret), v.handshake_secret);
    assert.equal(toHex(hs.clientHandshake), v.client_handshake_traffic_secret);
    assert.equal(toHex(hs.serverHandshake), v.server_handshake_traffic_secret);
    const app = applicationSecrets(hs.handshakeSecret, fromHex(v.transcript_hash));
    assert.equal(toHex(app.masterSecret), v.master_secret);
    assert.equal(toHex(app.clientApplication), v.client_application_traffic_secret);
    assert.equal(toHex(app.serverApplication), v.server_application_traffic_secret);
    assert.equal(toHex(app.exporterMaster), v.exporter_master_secret);
  });

  test(`sigmai (${name}): a tampered ServerHello is refused and closes the channel`, () => {
    for (const offset of [2, 40, 70, 120, 170, 200, 209]) {
      const client = vectorClient(name);
      client.initiate();
      const frame = fromHex(v.server_hello);
      frame[offset] ^= 1;
      assert.throws(() => client.receive(frame), ProtocolError);
      assert.equal(client.state, 'closed');
      assert.deepEqual(client.framesToSend(), []); // nothing of the device leaks
    }
  });

  test(`sigmai (${name}): tampered, replayed, reordered and reflected records are refused`, () => {
    const fresh = () => {
      const client = vectorClient(name);
      client.initiate();
      client.receive(fromHex(v.server_hello));
      return client;
    };
    const record = fromHex(v.server_record_0);
    const tampered = record.slice();
    tampered[5] ^= 0x80;
    assert.throws(() => fresh().receive(tampered), ProtocolError);
    const badHeader = record.slice();
    badHeader[1] = 0x16;
    assert.throws(() => fresh().receive(badHeader), ProtocolError);
    // Replay: the same record a second time meets the next sequence number.
    const client = fresh();
    client.receive(record);
    assert.throws(() => client.receive(record), ProtocolError);
    assert.equal(client.state, 'closed');
    assert.throws(() => client.send(new Uint8Array(1)), ProtocolError);
    // Reflection: the client's own record sent back is under the other direction's key.
    const other = fresh();
    assert.throws(() => other.receive(fromHex(v.client_record_0)), ProtocolError);
    // A replayed ServerHello after the handshake is no record.
    assert.throws(() => fresh().receive(fromHex(v.server_hello)), ProtocolError);
  });
}

test('sigmai: a server key other than the pinned one is refused before the device speaks', () => {
  const v = vectors.handshakes.ed25519;
  const device = new DeviceIdentity('ed25519', fromHex(inputs.device_ed25519_seed));
  const wrongPin = fromHex(inputs.server_key_hash);
  wrongPin[0] ^= 1;
  const client = new ClientConnection(device, wrongPin, {
    ephemeral: fromHex(inputs.client_ephemeral_x25519_private),
    random: fromHex(inputs.client_random),
  });
  client.initiate();
  // The pinned hash is part of the ClientHello and so of the handshake keys: the genuine server's answer
  // to another hello does not even open. (The man in the middle below is refused by the pin itself.)
  assert.throws(() => client.receive(fromHex(v.server_hello)), ProtocolError);
  assert.equal(client.state, 'closed');
  assert.deepEqual(client.framesToSend(), []);
});

test('sigmai: a ServerHello from a server with a valid signature but another key is refused', () => {
  // A man in the middle with its own key, answering for the pinned hash.
  const client = vectorClient('ed25519');
  const hello = client.initiate();
  const attackerSeed = new Uint8Array(32).fill(7);
  const attackerPublic = ed25519.getPublicKey(attackerSeed);
  const serverEphemeral = new Uint8Array(32).fill(9);
  const clear = new Uint8Array(66);
  clear.set([1, 2]);
  clear.set(x25519.getPublicKey(serverEphemeral), 2);
  const shared = x25519.getSharedSecret(serverEphemeral, hello.subarray(2, 34));
  const hs = handshakeSecrets(shared, transcriptHash(hello, clear));
  const pad = new Uint8Array(64).fill(0x20);
  const ctx = new TextEncoder().encode('sigmai v1, server signature');
  const th = transcriptHash(hello, clear, attackerPublic);
  const sig = ed25519.sign(new Uint8Array([...pad, ...ctx, 0, ...th]), attackerSeed);
  const inner = new Uint8Array([...attackerPublic, ...sig, ...new Uint8Array(32)]);
  const sealed = new RecordProtection(hs.serverHandshake).seal(inner, clear);
  assert.throws(() => client.receive(new Uint8Array([...clear, ...sealed])), /pinned/);
});

test('sigmai: wrong lengths and low-order shares are refused', () => {
  const v = vectors.handshakes.ed25519;
  const short = vectorClient('ed25519');
  short.initiate();
  assert.throws(() => short.receive(fromHex(v.server_hello).subarray(0, 209)), ProtocolError);
  const lowOrder = vectorClient('ed25519');
  lowOrder.initiate();
  const frame = fromHex(v.server_hello);
  frame.set(new Uint8Array(32), 2); // the all-zero u-coordinate: shared secret zero
  assert.throws(() => lowOrder.receive(frame), ProtocolError);
  const big = vectorClient('ed25519');
  big.initiate();
  big.receive(fromHex(v.server_hello));
  assert.throws(() => big.receive(new Uint8Array(64 * 1024 + 19)), /too large/);
});
