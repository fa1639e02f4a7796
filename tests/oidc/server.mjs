// A certified OpenID Provider (panva/node-oidc-provider) for the
// integration tests. Usage: node server.mjs CONFIG.json
//
// CONFIG: { "port": 40123, "clients": [...],
//           "accounts": { "<id>": { "email": "...", "email_verified": true } } }
// Prints `listening <port>` once serving. Its dev interactions (login with
// any account id) are driven by the tests over HTTP; consent is granted
// for the scopes asked (loadExistingGrant), as a first-party app would.
//
// One test hook, POST /__tamper, makes later token replies carry an ID
// token whose signature is altered: what a man in the middle would send.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = config.port;
// Fresh signing keys on every start (a restart is a key rotation): RS256
// and ES256, each client's id_token_signed_response_alg picks one.
const keys = ['rsa', 'ec'].map((type) => {
  const { privateKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig' };
});
let tamper = false;

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: config.clients,
  jwks: { keys },
  findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: account.email_verified };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: [] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
});

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/__tamper') {
    tamper = true;
    ctx.status = 204;
    return;
  }
  await next();
  if (tamper && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    const [h, p, s] = ctx.body.id_token.split('.');
    const flipped = (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    ctx.body = { ...ctx.body, id_token: `${h}.${p}.${flipped}` };
  }
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
