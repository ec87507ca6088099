#!/usr/bin/env node
// nextauth-js: a scriptable phone on the JavaScript SDK, the counterpart of the Python `nextauth-app`.
//
//   nextauth-js --home DIR COMMAND ['{"json": "arguments"}']
//
// Every command prints one JSON object; a failure exits 1 with {"error": ..., "code": ...} on stdout,
// so scripts and tests read both the same way. The state lives in DIR/state.json (mode 0600).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { App, ChannelError, FlowError, RemoteError } from '../src/index.js';
import { JsonFileStore } from '../src/node.js';

const USAGE = `usage: nextauth-js --home DIR COMMAND [JSON]
commands:
  init           {"config": "app-config.json"} or {"sfs": {uri, key_hash}, "mc": {...}}, "key_type"
  status         the device and its services
  hello          {"service": "sfs"|"mc"} or {"uri": ..., "key_hash": ...}
  register       {"pin": "2468", "biometric": false, "push_provider": "none", "push_token": null}
  scan           {"payload": "NA1....", "pin": "2468" | "biometric": true | "decline": true, "account": id}
  change-pin     {"old_pin": "2468", "new_pin": "1357"}
  webpush-key    the MC's VAPID public key (a web app subscribes to Web Push with it)
  inbox          pull login and signing requests from the MC
  approve        {"message": id, "number": 42, "pin": "2468" | "biometric": true | "decline": true}
  accounts       this app's accounts
  logout         {"account": id}
  lock-status    what the SFS last said: attempts left, locked`;

/** @param {Record<string, any>} args */
function secondFactor(args) {
  if (args.pin === undefined && !args.biometric && !args.decline) {
    throw new FlowError('Say how to confirm: "pin", "biometric": true, or "decline": true.');
  }
  return args.biometric ? null : (args.pin ?? null);
}

/** @type {Record<string, (app: App, args: Record<string, any>) => Promise<any>>} */
const COMMANDS = {
  async init(app, args) {
    let config = {};
    if (args.config) {
      try {
        config = JSON.parse(await readFile(args.config, 'utf8'));
      } catch (error) {
        throw new FlowError(`cannot read app configuration ${args.config}: ${error}`);
      }
    }
    return app.init({ sfs: args.sfs ?? config.sfs, mc: args.mc ?? config.mc, keyType: args.key_type });
  },
  status: (app) => app.status(),
  hello: (app, args) => app.hello(args.service ?? { uri: args.uri, key_hash: args.key_hash }),
  register: (app, args) =>
    app.register(args.pin, {
      biometric: Boolean(args.biometric),
      pushProvider: args.push_provider ?? 'none',
      pushToken: args.push_token ?? null,
    }),
  scan: (app, args) =>
    app.scan(String(args.payload ?? ''), {
      pin: secondFactor(args),
      approve: !args.decline,
      accountId: args.account ?? null,
    }),
  'change-pin': (app, args) => app.changePin(args.old_pin, args.new_pin),
  'webpush-key': async (app) => ({ vapid_public_key: await app.webpushKey() }),
  inbox: async (app) => ({ messages: await app.inbox() }),
  approve: (app, args) =>
    app.approve(String(args.message), {
      number: args.number ?? null,
      pin: secondFactor(args),
      decline: Boolean(args.decline),
    }),
  accounts: async (app) => ({ accounts: await app.accounts() }),
  logout: (app, args) => app.logout({ accountId: args.account ?? null }),
  'lock-status': (app) => app.lockStatus(),
};

/** @param {unknown} payload */
function emit(payload) {
  process.stdout.write(JSON.stringify(payload, null, 2) + '\n');
}

async function main() {
  const argv = process.argv.slice(2);
  let home = process.env.NEXTAUTH_APP_HOME ?? '';
  let timeout = 10;
  while (argv[0]?.startsWith('--')) {
    const flag = /** @type {string} */ (argv.shift());
    if (flag === '--home') home = /** @type {string} */ (argv.shift());
    else if (flag === '--timeout') timeout = Number(argv.shift());
    else {
      emit({ error: `unknown option ${flag}\n${USAGE}` });
      return 2;
    }
  }
  const [command, json] = argv;
  if (!home || !command || !(command in COMMANDS)) {
    emit({ error: USAGE });
    return 2;
  }
  let args = {};
  if (json) {
    try {
      args = JSON.parse(json);
    } catch {
      emit({ error: 'the arguments are not JSON' });
      return 2;
    }
  }
  const app = new App(new JsonFileStore(join(home, 'state.json')), { timeout });
  try {
    emit(await COMMANDS[command](app, args));
    return 0;
  } catch (error) {
    if (error instanceof RemoteError) {
      emit({ error: error.remoteMessage, code: error.code });
      return 1;
    }
    if (error instanceof FlowError || error instanceof ChannelError) {
      emit({ error: error.message });
      return 1;
    }
    emit({ error: String(error) });
    return 1;
  }
}

process.exitCode = await main();
