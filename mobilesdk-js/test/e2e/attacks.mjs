#!/usr/bin/env node
// What an attacker does with the SDK's pieces, for tests/test_js_sdk.py: steps the CLI refuses to offer.
//
//   node test/e2e/attacks.mjs replay-attestation '{"home": DIR, "account": ID, "pin": PIN,
//                                                  "first": QR, "second": QR}'
//
// Logs in with the first login code, keeps the SFS attestation it got, and presents that attestation
// again for the second login code (with a correct account signature). Prints what ns answered.

import { join } from 'node:path';
import { App, RemoteError, decodeQR, unb64url, b64url, withChannel } from '../../src/index.js';
import { JsonFileStore } from '../../src/node.js';
import { LOGIN_EXPORTER, loginStatement } from '../../src/statements.js';

async function replayAttestation(args) {
  const app = new App(new JsonFileStore(join(args.home, 'state.json')));
  const record = (await app.accountRecords()).find((a) => a.id === args.account);
  if (!record) throw new Error('no such account');
  const identity = await app.accountKey(record);
  const login = (text, replayed) => {
    const payload = decodeQR(text);
    return withChannel(app.channel(record.sigmai_uri, identity, record.server_key_hash), async (ns) => {
      const started = await ns.request('login.start', {
        qr_id: payload.itemId,
        challenge: b64url(payload.secret),
      });
      const nsChallenge = unb64url(started.ns_challenge);
      const token =
        replayed ??
        (await app.attest({
          pin: args.pin,
          audience: started.audience,
          nsChallenge,
          purpose: 'login',
          account: identity,
        }));
      const binding = ns.exportKeyingMaterial(LOGIN_EXPORTER, new Uint8Array(0), 32);
      const signature = await identity.sign(
        loginStatement(payload.itemId, payload.secret, nsChallenge, binding),
      );
      await ns.request('login.finish', { attestation: token, signature: b64url(signature) });
      return token;
    });
  };
  const token = await login(args.first, null);
  try {
    await login(args.second, token);
    return { first: 'logged_in', second: 'logged_in' };
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    return { first: 'logged_in', second: 'refused', code: error.code, error: error.remoteMessage };
  }
}

const [command, json] = process.argv.slice(2);
if (command !== 'replay-attestation') {
  process.stdout.write(JSON.stringify({ error: 'unknown attack' }) + '\n');
  process.exitCode = 2;
} else {
  try {
    process.stdout.write(JSON.stringify(await replayAttestation(JSON.parse(json))) + '\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: String(error), code: error.code }) + '\n');
    process.exitCode = 1;
  }
}
