import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ristretto255_oprf } from '@noble/curves/ed25519.js';
import { fromHex, toHex } from '../src/bytes.js';
import { OPRFError, blind, blindEvaluate, deriveKeyPair, finalize } from '../src/oprf.js';

// RFC 9497 Appendix A.1.1, ristretto255-SHA512, OPRF mode; typed in from the RFC text.
const SEED = fromHex('a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3');
const KEY_INFO = fromHex('74657374206b6579');
const SKSM = '5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e';
const VECTORS = [
  {
    input: '00',
    blind: '64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706',
    blinded: '609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c',
    evaluated: '7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e',
    output:
      '527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3' +
      'ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6',
  },
  {
    input: '5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a',
    blind: '64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706',
    blinded: 'da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418',
    evaluated: 'b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25',
    output:
      'f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4' +
      'f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73',
  },
];

test('RFC 9497 A.1.1: DeriveKeyPair gives the test key', () => {
  assert.equal(toHex(deriveKeyPair(SEED, KEY_INFO)), SKSM);
});

for (const [i, v] of VECTORS.entries()) {
  test(`RFC 9497 A.1.1.${i + 1}: blind, evaluate, finalize`, () => {
    const input = fromHex(v.input);
    const { blindedElement } = blind(input, fromHex(v.blind));
    assert.equal(toHex(blindedElement), v.blinded);
    assert.equal(toHex(blindEvaluate(fromHex(SKSM), blindedElement)), v.evaluated);
    assert.equal(toHex(finalize(input, fromHex(v.blind), fromHex(v.evaluated))), v.output);
    // noble's own RFC 9497 code agrees (a second implementation of Finalize).
    const noble = ristretto255_oprf.oprf.finalize(input, fromHex(v.blind), fromHex(v.evaluated));
    assert.equal(toHex(noble), v.output);
  });
}

test('OPRF: a random blind round-trips and never repeats', () => {
  const input = new TextEncoder().encode('nextauth-pin-v12468');
  const one = blind(input);
  const two = blind(input);
  assert.notEqual(toHex(one.blindedElement), toHex(two.blindedElement));
  const key = fromHex(SKSM);
  assert.equal(
    toHex(finalize(input, one.blind, blindEvaluate(key, one.blindedElement))),
    toHex(finalize(input, two.blind, blindEvaluate(key, two.blindedElement))),
  );
});

test('OPRF: a malicious evaluated element is refused', () => {
  const { blind: b } = blind(new Uint8Array([1]));
  assert.throws(() => finalize(new Uint8Array([1]), b, new Uint8Array(32)), OPRFError); // identity
  assert.throws(() => finalize(new Uint8Array([1]), b, new Uint8Array(32).fill(0xff)), OPRFError);
  assert.throws(() => finalize(new Uint8Array([1]), b, new Uint8Array(31)), OPRFError);
  assert.throws(() => blind(new Uint8Array(1), new Uint8Array(32)), OPRFError); // zero blind
  assert.throws(() => blind(new Uint8Array(1), new Uint8Array(32).fill(0xff)), OPRFError); // >= L
});
