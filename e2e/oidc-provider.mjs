// A real OpenID Connect provider (the `oidc-provider` package) on 127.0.0.1, playing Google or
// LinkedIn for LeadGen's single sign-on tests. Started by `it::sso` as a child process:
//
//   node e2e/oidc-provider.mjs   →  prints one JSON line {"port": N} once it listens
//
// The issuer is http://127.0.0.1:N. Test-only endpoints (JSON bodies):
//   POST /test/clients      {clients: [{client_id, client_secret, redirect_uris,
//                           token_endpoint_auth_method}], clientAuthMethods?: [...]}
//                           registers the relying parties and starts the provider (once);
//                           LinkedIn is played with clientAuthMethods ['client_secret_post'];
//   POST /test/next-login   {sub, email, email_verified, name}: the account the next sign-in
//                           interaction logs in as (the "user" at Google's login page).
// Two impostor discovery documents let the tests present wrong metadata to LeadGen:
//   /impostor/.well-known/openid-configuration  the real metadata, but claiming issuer …/impostor
//   /verbatim/.well-known/openid-configuration  the real metadata, unchanged (issuer without the path)
import http from 'node:http';
import Provider from 'oidc-provider';

const accounts = new Map();
let nextLogin = null;
let provider = null;
let issuer = '';

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function start({ clients, clientAuthMethods }) {
  provider = new Provider(issuer, {
    clients,
    ...(clientAuthMethods ? { clientAuthMethods } : {}),
    // Google and LinkedIn put the profile claims into the ID token itself.
    conformIdTokenClaims: false,
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['leadgen-test-provider-cookie-key'] },
    findAccount: async (_ctx, sub) => {
      const claims = accounts.get(sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ ...claims, sub }) };
    },
  });
}

// The login page: signs in as the account queued with /test/next-login and grants the scopes.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (!nextLogin) {
    send(res, 409, { error: 'no account queued with /test/next-login' });
    return;
  }
  const { sub, ...claims } = nextLogin;
  accounts.set(sub, claims);
  const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

async function impostor(res, path) {
  const real = await fetch(`${issuer}/.well-known/openid-configuration`).then((r) => r.json());
  if (path === 'impostor') real.issuer = `${issuer}/impostor`;
  send(res, 200, real);
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (req.method === 'POST' && url.pathname === '/test/clients') {
      if (!provider) start(await readJson(req));
      send(res, 200, { issuer });
    } else if (req.method === 'POST' && url.pathname === '/test/next-login') {
      nextLogin = await readJson(req);
      send(res, 200, {});
    } else if (!provider) {
      send(res, 503, { error: 'no clients registered yet' });
    } else if (url.pathname.startsWith('/interaction/')) {
      await interaction(req, res);
    } else if (url.pathname === '/impostor/.well-known/openid-configuration') {
      await impostor(res, 'impostor');
    } else if (url.pathname === '/verbatim/.well-known/openid-configuration') {
      await impostor(res, 'verbatim');
    } else {
      provider.callback()(req, res);
    }
  } catch (e) {
    send(res, 500, { error: String(e && e.stack ? e.stack : e) });
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
// The test harness closes stdin when it is done (or dies); stop with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
