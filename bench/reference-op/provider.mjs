// Reference OpenID provider for the nextAuth benchmarks: node oidc-provider (see package.json), as a
// deployment would configure it for a first-party client, on loopback.
//
//   node provider.mjs            (settings from the environment, see below)
//
// BENCH_OP_PORT        port on 127.0.0.1 (required)
// BENCH_OP_CLIENTS     JSON list of clients: [{client_id, client_secret, redirect_uris, id_token_signed_response_alg}]
// BENCH_OP_CODE_TTL    authorization code lifetime in seconds (default 600)
//
// Logins are approved without a person: the first authorization request of a browser session lands on
// /interaction/<uid>, which this script finishes at once for the account "bench-user"; consent is taken
// as given (loadExistingGrant grants the requested scopes, as a provider does for its own first-party
// clients). Later requests in the same session go straight back to the client with a code.
// State lives in memory, in the Map-based adapter below: the provider's own development adapter keeps
// only the last 1000 entries, fewer than the codes and tokens of one benchmark run, so evicted codes
// would fail as invalid_grant. Prints "ready <port>" once listening.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.BENCH_OP_PORT);
if (!port) {
  console.error('BENCH_OP_PORT: required');
  process.exit(2);
}
const clients = JSON.parse(process.env.BENCH_OP_CLIENTS || '[]').map((client) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
}));
const codeTtl = Number(process.env.BENCH_OP_CODE_TTL || 600);
const ACCOUNT = 'bench-user';

// In-memory storage for the provider's models, unbounded, entries dropped when they expire.
const entries = new Map(); // "<model>:<id>" -> { payload, expiresAt }
const byGrant = new Map(); // grantId -> Set of entry keys
const byUid = new Map(); // uid -> entry key (sessions)
const byUserCode = new Map(); // user code -> entry key (device flow; unused here, part of the interface)

class BenchAdapter {
  constructor(model) {
    this.model = model;
  }

  entryKey(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.entryKey(id);
    entries.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(key);
    }
    if (payload.uid) byUid.set(payload.uid, key);
    if (payload.userCode) byUserCode.set(payload.userCode, key);
  }

  read(key) {
    const entry = key && entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt < Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async find(id) {
    return this.read(this.entryKey(id));
  }

  async findByUid(uid) {
    return this.read(byUid.get(uid));
  }

  async findByUserCode(userCode) {
    return this.read(byUserCode.get(userCode));
  }

  async consume(id) {
    const payload = this.read(this.entryKey(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    entries.delete(this.entryKey(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of byGrant.get(grantId) || []) entries.delete(key);
    byGrant.delete(grantId);
  }
}

function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg}-${randomBytes(4).toString('hex')}` };
}

const configuration = {
  adapter: BenchAdapter,
  clients,
  jwks: {
    keys: [
      signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
      signingKey('ed25519', {}, 'EdDSA'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { methods: ['S256'], required: () => true },
  ttl: {
    AuthorizationCode: codeTtl,
    AccessToken: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  async loadExistingGrant(ctx) {
    const existing = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) {
      const grant = await ctx.oidc.provider.Grant.find(existing);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
};

const provider = new Provider(`http://127.0.0.1:${port}`, configuration);
provider.on('server_error', (ctx, error) => console.error('server_error', error));
const handle = provider.callback();

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    try {
      const details = await provider.interactionDetails(req, res);
      const result = details.prompt.name === 'login' ? { login: { accountId: ACCOUNT } } : {};
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
    } catch (error) {
      console.error('interaction', error);
      res.statusCode = 500;
      res.end(String(error));
    }
    return;
  }
  handle(req, res);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
