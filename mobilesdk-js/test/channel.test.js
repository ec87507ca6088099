// The channel over a real WebSocket, against test/helpers/server.js: answers are taken only when they
// are records of this channel, in order, for the request asked, in strict JSON.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelError, DeviceIdentity, RemoteError, openChannel } from '../src/index.js';
import { SERVER_KEY_HASH, SERVER_PUBLIC, startServer } from './helpers/server.js';

const device = DeviceIdentity.generate('p256');

/** @param {(request: any, peer: any) => void} answer @param {(channel: any) => Promise<void>} use */
async function withServer(answer, use, options = {}) {
  const server = await startServer(answer);
  try {
    const channel = await openChannel(server.uri, device, options.pin ?? SERVER_KEY_HASH, { timeout: 2 });
    try {
      await use(channel);
    } finally {
      channel.close();
    }
  } finally {
    await server.close();
  }
}

test('channel: a request gets its answer; the server key is the pinned one', async () => {
  await withServer(
    (request, peer) =>
      peer.send(peer.seal({ id: request.id, result: { op: request.op, params: request.params } })),
    async (channel) => {
      assert.deepEqual(channel.serverPublicKey, SERVER_PUBLIC);
      assert.deepEqual(await channel.request('hello', { a: 1 }), { op: 'hello', params: { a: 1 } });
      assert.deepEqual(await channel.request('again'), { op: 'again', params: {} });
    },
  );
});

test('channel: an error answer is a RemoteError with its code and retry_after', async () => {
  await withServer(
    (request, peer) =>
      peer.send(
        peer.seal({ id: request.id, error: { code: 'rate_limited', message: 'Later.', retry_after: 7 } }),
      ),
    async (channel) => {
      await assert.rejects(channel.request('register.start'), (error) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.code, 'rate_limited');
        assert.equal(error.retryAfter, 7);
        return true;
      });
    },
  );
});

test('channel: a server that is not the pinned one is refused', async () => {
  const wrong = SERVER_KEY_HASH.slice();
  wrong[31] ^= 1;
  await assert.rejects(
    withServer(
      () => {},
      async () => {},
      { pin: wrong },
    ),
    (error) => error instanceof ChannelError && /pinned/.test(error.message),
  );
});

test('channel: a replayed record is refused and ends the channel', async () => {
  let first = null;
  await withServer(
    (request, peer) => {
      first ??= peer.seal({ id: request.id, result: {} });
      peer.send(first); // the second answer is the first one again
    },
    async (channel) => {
      await channel.request('one');
      await assert.rejects(channel.request('two'), ChannelError);
      await assert.rejects(channel.request('three'), ChannelError);
    },
  );
});

test('channel: a tampered record is refused', async () => {
  await withServer(
    (request, peer) => {
      const frame = peer.seal({ id: request.id, result: {} });
      frame[frame.length - 1] ^= 1;
      peer.send(frame);
    },
    async (channel) => {
      await assert.rejects(channel.request('hello'), ChannelError);
    },
  );
});

test('channel: a text message, another id, or JSON that is not strict are refused', async () => {
  const answers = [
    (request, peer) => peer.send(JSON.stringify({ id: request.id, result: {} })),
    (request, peer) => peer.send(peer.seal({ id: request.id + 1, result: {} })),
    (request, peer) => peer.send(peer.seal([request.id])),
    (request, peer) => peer.send(peer.sealText(`{"id":${request.id},"result":{"n":1e400}}`)),
    (request, peer) =>
      peer.send(peer.sealText(`{"id":${request.id},"result":${'['.repeat(20)}${']'.repeat(20)}}`)),
  ];
  for (const answer of answers) {
    await withServer(answer, async (channel) => {
      // Refused at once, not by the timeout.
      await assert.rejects(
        channel.request('hello'),
        (error) => error instanceof ChannelError && !/in time/.test(error.message),
      );
    });
  }
});

test('channel: a server that does not answer times out', async () => {
  const server = await startServer(() => {});
  try {
    const channel = await openChannel(server.uri, device, SERVER_KEY_HASH, { timeout: 0.3 });
    await assert.rejects(channel.request('hello'), /in time/);
    channel.close();
  } finally {
    await server.close();
  }
});

test('channel: nothing listening is a ChannelError', async () => {
  await assert.rejects(
    openChannel('ws://127.0.0.1:1/', device, SERVER_KEY_HASH, { timeout: 1 }),
    ChannelError,
  );
  await assert.rejects(openChannel('http://127.0.0.1:1/', device, SERVER_KEY_HASH), ChannelError);
});
