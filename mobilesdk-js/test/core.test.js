// The SDK's building blocks against values the Python reference computed
// (test/fixtures/python-reference.json, made by test/fixtures/make_reference.py).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { b64url, fromHex, toHex, unb64url, utf8 } from '../src/bytes.js';
import { EnvelopeError, openEnvelope, sealEnvelope } from '../src/envelope.js';
import { PinError, pinInput, prove, verifier } from '../src/pin.js';
import { QRError, decodeQR } from '../src/qr.js';
import { strictParse } from '../src/json.js';
import {
  confirmationCode,
  loginStatement,
  pinChangeStatement,
  sfsProofStatement,
  signingStatement,
} from '../src/statements.js';
import * as oprf from '../src/oprf.js';

const ref = JSON.parse(readFileSync(new URL('./fixtures/python-reference.json', import.meta.url), 'utf8'));

test('PIN verifier and proof match the Python SDK byte for byte', () => {
  for (const item of ref.pins) {
    const request = oprf.blind(pinInput(item.pin), fromHex(ref.blind));
    assert.equal(toHex(request.blindedElement), item.blinded);
    const args = [item.pin, request, fromHex(item.evaluated), fromHex(item.device_secret)];
    assert.equal(toHex(verifier(...args)), item.verifier);
    const proof = prove(...args, fromHex(item.statement));
    assert.equal(toHex(proof), item.proof);
  }
});

test('PIN: composed and decomposed forms are the same PIN; bad PINs are refused', () => {
  assert.deepEqual(pinInput('\u00e9clair'), pinInput('e\u0301clair'));
  assert.throws(() => pinInput('123'), PinError);
  assert.throws(() => pinInput('1'.repeat(65)), PinError);
  assert.throws(() => pinInput('12\n34'), PinError);
  assert.throws(() => pinInput('12\ud800345'), PinError);
  assert.equal(pinInput('𝄞𝄞𝄞𝄞').length, 15 + 16); // four code points are four characters
});

test('PIN: a wrong PIN gives another key', () => {
  const item = ref.pins[0];
  const request = oprf.blind(pinInput('1357'), fromHex(ref.blind));
  assert.notEqual(
    toHex(verifier('1357', request, fromHex(item.evaluated), fromHex(item.device_secret))),
    item.verifier,
  );
});

test('statements match the Python SDK', () => {
  assert.equal(
    toHex(loginStatement('qr-1', utf8('c'.repeat(16)), utf8('n'.repeat(32)), utf8('x'.repeat(32)))),
    ref.login_statement,
  );
  const proof = sfsProofStatement({
    sfsChallenge: utf8('s'.repeat(32)),
    channelBinding: utf8('b'.repeat(32)),
    audience: 'default',
    nsChallenge: utf8('n'.repeat(32)),
    purpose: 'login',
    accountThumbprint: 'thumb',
  });
  assert.equal(toHex(proof), ref.sfs_proof_statement);
  assert.equal(
    toHex(signingStatement(utf8('{"a":1}'), utf8('n'.repeat(32)), 'approved')),
    ref.signing_statement,
  );
  const change = pinChangeStatement({
    sfsChallenge: utf8('s'.repeat(32)),
    channelBinding: utf8('b'.repeat(32)),
    newPinVerifier: utf8('v'.repeat(32)),
  });
  assert.equal(toHex(change), ref.pin_change_statement);
  assert.equal(confirmationCode(fromHex(ref.confirmation_code.export)), ref.confirmation_code.code);
});

test('envelope: opens what the Python ns sealed', () => {
  const e = ref.envelope;
  const opened = openEnvelope(
    fromHex(e.sealed),
    fromHex(e.recipient),
    fromHex(e.sender_public),
    fromHex(e.sender_key_hash),
    e.mailbox,
    1_700_000_100,
  );
  assert.deepEqual(opened, e.message);
});

test('envelope: altered, misdirected, foreign-signed and expired envelopes are dropped', () => {
  const e = ref.envelope;
  const open = (sealed, overrides = {}) =>
    openEnvelope(
      sealed,
      overrides.recipient ?? fromHex(e.recipient),
      overrides.sender ?? fromHex(e.sender_public),
      fromHex(e.sender_key_hash),
      overrides.mailbox ?? e.mailbox,
      overrides.now ?? 1_700_000_100,
    );
  const sealed = fromHex(e.sealed);
  for (const offset of [0, 1, 40, sealed.length - 1]) {
    const altered = sealed.slice();
    altered[offset] ^= 1;
    assert.throws(() => open(altered), EnvelopeError);
  }
  assert.throws(() => open(sealed, { mailbox: 'mbx-2' }), EnvelopeError);
  assert.throws(() => open(sealed, { recipient: new Uint8Array(32).fill(5) }), EnvelopeError);
  assert.throws(() => open(sealed, { sender: ed25519.getPublicKey(new Uint8Array(32)) }), EnvelopeError);
  assert.throws(() => open(sealed, { now: 1_700_000_000 + 10 ** 9 + 1 }), /expired/);
  // A stranger who knows the account's public key seals a message with its own key: dropped.
  const stranger = new Uint8Array(32).fill(9);
  const forged = sealEnvelope(
    x25519.getPublicKey(fromHex(e.recipient)),
    stranger,
    fromHex(e.sender_key_hash),
    e.mailbox,
    { type: 'login' },
    { now: 1_700_000_000 },
  );
  assert.throws(() => open(forged), /not signed by the pinned server/);
});

test('QR payloads: decoded as the Python SDK writes them, refused when damaged', () => {
  const body = {
    t: 'login',
    sid: 'default',
    u: 'ws://127.0.0.1:1/ns/sigmai',
    k: b64url(new Uint8Array(32).fill(1)),
    i: 'qr-1',
    x: b64url(new Uint8Array(16).fill(2)),
  };
  const text = 'NA1.' + b64url(utf8(JSON.stringify(body)));
  const payload = decodeQR(text);
  assert.equal(payload.kind, 'login');
  assert.equal(payload.itemId, 'qr-1');
  assert.deepEqual(decodeQR('nextauth:' + text), payload);
  assert.throws(() => decodeQR('NA2.' + text.slice(4)), QRError);
  assert.throws(() => decodeQR(text.slice(0, -3)), QRError);
  const bad = (change) => 'NA1.' + b64url(utf8(JSON.stringify({ ...body, ...change })));
  assert.throws(() => decodeQR(bad({ t: 'pay' })), QRError);
  assert.throws(() => decodeQR(bad({ u: 'http://x/' })), QRError);
  assert.throws(() => decodeQR(bad({ k: b64url(new Uint8Array(31)) })), QRError);
  assert.throws(() => decodeQR(bad({ x: b64url(new Uint8Array(8)) })), QRError);
});

test('strict JSON: overflowing numbers and deep nesting are refused', () => {
  assert.throws(() => strictParse('{"a":1e400}'), SyntaxError);
  assert.throws(() => strictParse('{"a":NaN}'), SyntaxError);
  assert.throws(() => strictParse('['.repeat(17) + ']'.repeat(17)), SyntaxError);
  assert.deepEqual(strictParse('['.repeat(16) + ']'.repeat(16)).length, 1);
  assert.deepEqual(unb64url(b64url(new Uint8Array([1, 2, 3, 4]))), new Uint8Array([1, 2, 3, 4]));
});
