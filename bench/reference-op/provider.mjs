// Reference OpenID provider for the nextAuth benchmarks: node oidc-provider (see package.json), as a
// deployment would configure it for a first-party client, on loopback.
//
//   node provider.mjs            (settings from the environment, see below)
//
// BENCH_OP_PORT        port on 127.0.0.1 (required)
// BENCH_OP_CLIENTS     JSON list of clients: [{client_id, client_secret, redirect_uris, id_token_signed_response_alg}]
// BENCH_OP_CODE_TTL    authorization code lifetime in seconds (default 600)
// BENCH_OP_WORKERS     worker processes (node's cluster module, sharing the port; default 1)
// BENCH_OP_REDIS       a Redis URI: keep state there (needed by more than one worker, which share nothing
//                      else), under the key prefix BENCH_OP_REDIS_PREFIX (default "bench-op:")
//
// Logins are approved without a person: the first authorization request of a browser session lands on
// /interaction/<uid>, which this script finishes at once for the account "bench-user"; consent is taken
// as given (loadExistingGrant grants the requested scopes, as a provider does for its own first-party
// clients). Later requests in the same session go straight back to the client with a code.
// State lives in memory, in the Map-based adapter below: the provider's own development adapter keeps
// only the last 1000 entries, fewer than the codes and tokens of one benchmark run, so evicted codes
// would fail as invalid_grant. With BENCH_OP_REDIS, state lives in Redis instead (RedisAdapter), as a
// deployment of several processes keeps it. Prints "ready <port>" once listening (every worker).

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Redis from 'ioredis';
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

// Redis: consumable models (codes, refresh tokens...) as hashes {payload, consumed}, others as strings;
// indexes by grant, uid and user code beside them. Each operation is one round trip (a pipeline).
const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
const redisUri = process.env.BENCH_OP_REDIS;
const redisPrefix = process.env.BENCH_OP_REDIS_PREFIX || 'bench-op:';
const redis = redisUri ? new Redis(redisUri, { keyPrefix: redisPrefix }) : null;

class RedisAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = redis.multi();
    if (CONSUMABLE.has(this.model)) {
      multi.del(key);
      multi.hset(key, { payload: JSON.stringify(payload) });
      if (expiresIn) multi.expire(key, expiresIn);
    } else if (expiresIn) {
      multi.set(key, JSON.stringify(payload), 'EX', expiresIn);
    } else {
      multi.set(key, JSON.stringify(payload));
    }
    if (payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      multi.rpush(grantKey, key);
      if (expiresIn) multi.expire(grantKey, expiresIn);
    }
    if (payload.uid) multi.set(`uid:${payload.uid}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    if (payload.userCode) multi.set(`userCode:${payload.userCode}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    await multi.exec();
  }

  async find(id) {
    const key = this.key(id);
    if (CONSUMABLE.has(this.model)) {
      const found = await redis.hgetall(key);
      if (!found || !found.payload) return undefined;
      const payload = JSON.parse(found.payload);
      if (found.consumed) payload.consumed = Number(found.consumed);
      return payload;
    }
    const raw = await redis.get(key);
    return raw ? JSON.parse(raw) : undefined;
  }

  async findByUid(uid) {
    const id = await redis.get(`uid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await redis.get(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    await redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await redis.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    const keys = await redis.lrange(grantKey, 0, -1);
    await redis.del(...keys, grantKey);
  }
}

function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg}-${randomBytes(4).toString('hex')}` };
}

// Workers must sign with the same keys and read each other's cookies: the primary makes them once.
const workers = Number(process.env.BENCH_OP_WORKERS || 1);
if (workers > 1 && !redis) {
  console.error('BENCH_OP_WORKERS > 1 needs BENCH_OP_REDIS: workers share no memory');
  process.exit(2);
}
const secrets = process.env.BENCH_OP_SECRETS
  ? JSON.parse(process.env.BENCH_OP_SECRETS)
  : {
      keys: [
        signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
        signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
        signingKey('ed25519', {}, 'EdDSA'),
      ],
      cookies: [randomBytes(32).toString('hex')],
    };

if (workers > 1 && cluster.isPrimary) {
  let ready = 0;
  cluster.on('message', (_worker, message) => {
    if (message === 'ready' && ++ready === workers) console.log(`ready ${port}`);
  });
  cluster.on('exit', (_worker, code, signal) => {
    console.error(`worker exited (${signal || code})`);
  });
  for (let i = 0; i < workers; i += 1) cluster.fork({ BENCH_OP_SECRETS: JSON.stringify(secrets) });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      for (const worker of Object.values(cluster.workers)) worker.kill('SIGTERM');
      process.exit(0);
    });
  }
} else {
  serve();
}

function serve() {
  const configuration = {
    adapter: redis ? RedisAdapter : BenchAdapter,
    clients,
    jwks: { keys: secrets.keys },
    cookies: { keys: secrets.cookies },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    pkce: { methods: ['S256'], required: () => true },
    // A refresh token with every exchange for a client with the refresh grant, as the nextAuth IdP issues
    // them (by default oidc-provider also wants the offline_access scope): both sides do the same work.
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    ttl: {
      AuthorizationCode: codeTtl,
      AccessToken: 3600,
      RefreshToken: 86400,
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
  server.listen(port, '127.0.0.1', () => (cluster.isWorker ? process.send('ready') : console.log(`ready ${port}`)));
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => server.close(() => process.exit(0)));
  }
}
