// A sigmai server on loopback for the channel tests, built from the spec's steps (docs/sigmai.md
// sections 4 to 7) with the vectors' server key. Each test decides how it answers a request, so it can
// also misbehave as an attacker in the network or a broken server would.

import { WebSocketServer } from 'ws';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { concat, fromUtf8, utf8 } from '../../src/bytes.js';
import {
  RecordProtection,
  applicationSecrets,
  finishedMac,
  handshakeSecrets,
  serverKeyHash,
  transcriptHash,
} from '../../src/sigmai.js';

export const SERVER_SEED = Uint8Array.from({ length: 32 }, (_, i) => i);
export const SERVER_PUBLIC = ed25519.getPublicKey(SERVER_SEED);
export const SERVER_KEY_HASH = serverKeyHash(SERVER_PUBLIC);
const RECORD_HEADER = new Uint8Array([1, 0x17]);

/**
 * @typedef {object} Peer
 * @property {(message: unknown) => Uint8Array} seal a JSON message as the next record (not sent)
 * @property {(text: string) => Uint8Array} sealText any text as the next record (not sent)
 * @property {(data: Uint8Array | string) => void} send a raw WebSocket message
 */

/**
 * @param {(request: any, peer: Peer) => void} answer
 * @returns {Promise<{uri: string, close: () => Promise<void>}>}
 */
export async function startServer(answer) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    let hello;
    let serverHello;
    let secrets;
    let sender;
    let receiver;
    ws.on('message', (raw, isBinary) => {
      const frame = new Uint8Array(/** @type {Buffer} */ (raw));
      if (!isBinary) return ws.close(1003);
      if (!hello) {
        hello = frame;
        const ephemeral = x25519.utils.randomSecretKey();
        const clear = concat(
          new Uint8Array([1, 2]),
          x25519.getPublicKey(ephemeral),
          new Uint8Array(32).fill(7),
        );
        secrets = handshakeSecrets(
          x25519.getSharedSecret(ephemeral, frame.subarray(2, 34)),
          transcriptHash(frame, clear),
        );
        const signed = concat(
          new Uint8Array(64).fill(0x20),
          utf8('sigmai v1, server signature'),
          new Uint8Array([0]),
          transcriptHash(frame, clear, SERVER_PUBLIC),
        );
        const signature = ed25519.sign(signed, SERVER_SEED);
        const finished = finishedMac(
          secrets.serverHandshake,
          transcriptHash(frame, clear, SERVER_PUBLIC, signature),
        );
        serverHello = concat(
          clear,
          new RecordProtection(secrets.serverHandshake).seal(
            concat(SERVER_PUBLIC, signature, finished),
            clear,
          ),
        );
        ws.send(serverHello);
        return;
      }
      if (!receiver) {
        // The ClientFinish must at least open under the client's handshake key.
        new RecordProtection(secrets.clientHandshake).open(frame.subarray(2), frame.subarray(0, 2));
        const app = applicationSecrets(secrets.handshakeSecret, transcriptHash(hello, serverHello, frame));
        sender = new RecordProtection(app.serverApplication);
        receiver = new RecordProtection(app.clientApplication);
        return;
      }
      const request = JSON.parse(fromUtf8(receiver.open(frame.subarray(2), RECORD_HEADER)));
      answer(request, {
        seal: (message) => concat(RECORD_HEADER, sender.seal(utf8(JSON.stringify(message)), RECORD_HEADER)),
        sealText: (text) => concat(RECORD_HEADER, sender.seal(utf8(text), RECORD_HEADER)),
        send: (data) => ws.send(data),
      });
    });
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (wss.address());
  return {
    uri: `ws://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve(undefined));
      }),
  };
}
