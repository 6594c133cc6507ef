// A local OpenID Connect provider standing in for Pro Santé Connect (PSC).
//
// It is the certified `oidc-provider` package doing the real protocol: discovery,
// authorization endpoint, token endpoint (client authentication, PKCE), signed ID
// tokens with a JWKS, userinfo. Only the login page is ours: it lets a test (or a
// person running the demo) pick one of the configured accounts, since there is no
// e-CPS or CPS card here.
//
// Configuration: a JSON file named by --config FILE (or the JSON itself in the
// environment variable OIDC_PROVIDER_CONFIG), and --host / --port. Port 0 picks a
// free port. When listening, one JSON line {"issuer", "port"} is printed on
// standard output. Example:
//
//   {
//     "issuer": "http://127.0.0.1:9000",          (default: http://HOST:PORT)
//     "clients": [{"client_id": "rempart", "client_secret": "…",
//                  "redirect_uris": ["http://127.0.0.1:8000/api/v1/auth/psc/callback"]}],
//     "accounts": [{"id": "claire", "acr": "eidas1", "amr": ["pin", "mfa"],
//                   "claims": {"SubjectNameID": "810003456789",
//                              "given_name": "Claire", "family_name": "Martin"}}],
//     "acr": "eidas1",             default acr of an account
//     "amr": ["pin"],              default amr of an account
//     "id_token_ttl": 3600,        seconds
//     "id_token_claims": false     true: scope claims go in the ID token too
//   }
//
// The login page: GET /interaction/:uid shows a form; POST /interaction/:uid with
// `account=<id>` logs that account in and grants what the client asked for
// (first-party consent). An authorization request with `login_hint=<id>` naming a
// configured account skips the form.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const PSC_SCOPE_CLAIMS = [
  'SubjectNameID',
  'SubjectRefPro',
  'SubjectOrganization',
  'SubjectRole',
  'given_name',
  'family_name',
  'preferred_username',
];

function loadConfig() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
    },
  });
  let config = {};
  if (values.config) {
    config = JSON.parse(readFileSync(values.config, 'utf8'));
  } else if (process.env.OIDC_PROVIDER_CONFIG) {
    config = JSON.parse(process.env.OIDC_PROVIDER_CONFIG);
  }
  return { ...config, host: values.host, port: Number(values.port) };
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }],
  };
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function buildProvider(config, issuer) {
  const accounts = new Map((config.accounts ?? []).map((account) => [account.id, account]));
  const defaultAcr = config.acr ?? 'eidas1';
  const defaultAmr = config.amr ?? ['pin'];

  const provider = new Provider(issuer, {
    clients: (config.clients ?? []).map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    jwks: config.jwks ?? signingKeys(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    acrValues: ['eidas0', 'eidas1', 'eidas2', 'eidas3'],
    scopes: ['openid', 'scope_all'],
    // acr and amr in every ID token, as PSC sends them.
    claims: {
      openid: ['sub', 'acr', 'amr'],
      scope_all: PSC_SCOPE_CLAIMS,
      auth_time: null,
      sid: null,
      iss: null,
    },
    conformIdTokenClaims: !config.id_token_claims,
    pkce: { required: () => true },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
    },
    ttl: {
      AuthorizationCode: 60,
      AccessToken: 300,
      IdToken: config.id_token_ttl ?? 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, ...(account.claims ?? {}) };
        },
      };
    },
  });

  // Logs the account in and grants what the client asked for, in one interaction result.
  async function logIn(req, res, details, accountId) {
    const account = accounts.get(accountId);
    if (!account) {
      return provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'unknown account',
      }, { mergeWithLastSubmission: false });
    }
    const { params } = details;
    const grant = new provider.Grant({ accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope ?? 'openid'));
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, {
      login: { accountId, acr: account.acr ?? defaultAcr, amr: account.amr ?? defaultAmr },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  }

  async function interaction(req, res, uid) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) {
      res.statusCode = 400;
      res.end('interaction mismatch');
      return;
    }
    if (req.method === 'POST') {
      const form = await readForm(req);
      await logIn(req, res, details, form.get('account') ?? '');
      return;
    }
    const hint = details.params.login_hint;
    if (typeof hint === 'string' && accounts.has(hint)) {
      await logIn(req, res, details, hint);
      return;
    }
    const options = [...accounts.values()]
      .map((a) => `<option value="${escapeHtml(a.id)}">${escapeHtml(a.id)} (${escapeHtml(a.acr ?? defaultAcr)})</option>`)
      .join('');
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.end(`<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Connexion (fournisseur local)</title></head>
<body><h1>Fournisseur OpenID Connect local</h1>
<p>Remplace Pro Santé Connect pour les essais : choisissez le compte à connecter.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}">
<select name="account">${options}</select> <button type="submit">Se connecter</button>
</form></body></html>`);
  }

  const handle = provider.callback();
  return async (req, res) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(req.url, issuer).pathname);
    if (!match) {
      handle(req, res);
      return;
    }
    try {
      await interaction(req, res, match[1]);
    } catch (error) {
      process.stderr.write(`interaction failed: ${error?.message ?? error}\n`);
      if (!res.headersSent) {
        res.statusCode = 400;
        res.end('interaction failed');
      }
    }
  };
}

const config = loadConfig();
const server = createServer();
server.listen(config.port, config.host, () => {
  const { port } = server.address();
  const issuer = config.issuer ?? `http://${config.host}:${port}`;
  server.on('request', buildProvider(config, issuer));
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
