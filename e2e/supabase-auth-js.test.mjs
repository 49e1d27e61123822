// The official Supabase auth client against LeadGen's /auth/v1: proves our wire format is the one
// Supabase clients speak. Run by the Rust test it::e2e::supabase_auth_js_client, which starts the
// server and sets LEADGEN_BASE_URL, LEADGEN_MAILBOX_DIR and NODE_EXTRA_CA_CERTS (the server's
// development certificate, so TLS is verified, not skipped).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthClient } from '@supabase/auth-js';
import { totp } from './totp.mjs';

const BASE = process.env.LEADGEN_BASE_URL;
const MAILBOX = process.env.LEADGEN_MAILBOX_DIR;
if (!BASE || !MAILBOX) {
  throw new Error('LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR must be set (run through cargo nextest, it::e2e)');
}

const email = `auth-js-${Date.now()}@acme.io`;
const password = 'amber walrus sings quietly 42';

function client(flowType = 'implicit') {
  return new AuthClient({
    url: `${BASE}/auth/v1`,
    persistSession: false,
    autoRefreshToken: false,
    flowType,
    experimental: { recoveryCodes: true },
  });
}

function mailsTo(to, subject) {
  return readdirSync(MAILBOX)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(MAILBOX, f), 'utf8')))
    .filter((m) => m.to === to && (!subject || subject.test(m.subject)));
}

// Mail is sent in the background (the answer must not reveal whether an account exists).
async function nextMail(to, subject, seen) {
  for (let i = 0; i < 100; i++) {
    const mails = mailsTo(to, subject);
    if (mails.length > seen) return mails[mails.length - 1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no new mail "${subject}" for ${to}`);
}

// A confirmed account with a signed-in client.
async function account(prefix, flowType = 'implicit') {
  const auth = client(flowType);
  const address = `${prefix}-${Date.now()}@acme.io`;
  assert.equal((await auth.signUp({ email: address, password })).error, null);
  const { error } = await auth.verifyOtp({ token_hash: confirmationHash(address), type: 'signup' });
  assert.equal(error, null, error?.message);
  return { auth, address };
}

// A browser for the single sign-on dance: follows redirects by hand and keeps cookies per host.
function browser() {
  const jar = new Map();
  return async function get(url) {
    const u = new URL(url);
    const cookies = jar.get(u.host) ?? new Map();
    const res = await fetch(u, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const at = pair.indexOf('=');
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    jar.set(u.host, cookies);
    return res;
  };
}

function confirmationHash(to) {
  const mails = readdirSync(MAILBOX)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(MAILBOX, f), 'utf8')))
    .filter((m) => m.to === to);
  assert.equal(mails.length, 1, `one confirmation mail for ${to}`);
  const m = /token hash for API clients\): ([0-9a-f]{64})/.exec(mails[0].text);
  assert.ok(m, mails[0].text);
  return m[1];
}

test('sign up, confirm, sign in, refresh, read the user, sign out', async () => {
  const auth = client();

  const signUp = await auth.signUp({ email, password, options: { data: { team: 'sales' } } });
  assert.equal(signUp.error, null, signUp.error?.message);
  assert.equal(signUp.data.session, null, 'no session before the address is confirmed');
  assert.equal(signUp.data.user.email, email);
  assert.equal(signUp.data.user.user_metadata.team, 'sales');

  const early = await auth.signInWithPassword({ email, password });
  assert.equal(early.error?.code, 'email_not_confirmed');

  const verified = await auth.verifyOtp({ token_hash: confirmationHash(email), type: 'signup' });
  assert.equal(verified.error, null, verified.error?.message);
  assert.ok(verified.data.session?.access_token);

  const wrong = await auth.signInWithPassword({ email, password: 'not my password at all' });
  assert.equal(wrong.error?.status, 400);
  assert.equal(wrong.error?.code, 'invalid_credentials');

  const signIn = await auth.signInWithPassword({ email, password });
  assert.equal(signIn.error, null, signIn.error?.message);
  const first = signIn.data.session;
  assert.equal(first.token_type, 'bearer');
  assert.ok(first.expires_at > Date.now() / 1000);

  const me = await auth.getUser();
  assert.equal(me.error, null, me.error?.message);
  assert.equal(me.data.user.email, email);

  const refreshed = await auth.refreshSession();
  assert.equal(refreshed.error, null, refreshed.error?.message);
  assert.notEqual(refreshed.data.session.refresh_token, first.refresh_token, 'refresh tokens rotate');

  const out = await auth.signOut();
  assert.equal(out.error, null, out.error?.message);

  // The signed-out access token no longer works.
  const after = await auth.getUser(refreshed.data.session.access_token);
  assert.ok(after.error, 'a signed-out session is refused');
  assert.equal(after.data.user, null);
});

test('weak passwords come back as AuthWeakPasswordError with reasons', async () => {
  const { error } = await client().signUp({ email: `weak-${Date.now()}@acme.io`, password: 'password123' });
  assert.equal(error?.name, 'AuthWeakPasswordError');
  assert.equal(error?.code, 'weak_password');
  assert.deepEqual(error?.reasons, ['pwned']);
});


test('enroll and verify TOTP, reaching aal2, then sign out', async () => {
  const auth = client();
  const mfaEmail = `mfa-${Date.now()}@acme.io`;
  assert.equal((await auth.signUp({ email: mfaEmail, password })).error, null);
  assert.equal((await auth.verifyOtp({ token_hash: confirmationHash(mfaEmail), type: 'signup' })).error, null);

  const before = await auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(before.data.currentLevel, 'aal1');

  const enrolled = await auth.mfa.enroll({ factorType: 'totp', friendlyName: 'phone' });
  assert.equal(enrolled.error, null, enrolled.error?.message);
  assert.match(enrolled.data.totp.qr_code, /^data:image\/svg\+xml;utf-8,/);
  assert.match(enrolled.data.totp.uri, /^otpauth:\/\/totp\//);

  const verified = await auth.mfa.challengeAndVerify({
    factorId: enrolled.data.id,
    code: totp(enrolled.data.totp.secret),
  });
  assert.equal(verified.error, null, verified.error?.message);

  const after = await auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(after.data.currentLevel, 'aal2');
  assert.equal(after.data.nextLevel, 'aal2');
  assert.ok(after.data.currentAuthenticationMethods.some((m) => m.method === 'totp'));

  // Recovery codes: shown once, each usable once, reported as remaining.
  const rc = await auth.mfa.recoveryCodes.generate({ friendlyName: 'Backup codes' });
  assert.equal(rc.error, null, rc.error?.message);
  assert.equal(rc.data.codes.length, 10);
  const used = await auth.mfa.recoveryCodes.verify({ code: rc.data.codes[0].toUpperCase().match(/.{1,4}/g).join('-') });
  assert.equal(used.error, null, used.error?.message);
  const again = await auth.mfa.recoveryCodes.verify({ code: rc.data.codes[0] });
  assert.equal(again.error?.code, 'mfa_verification_failed');
  const status = await auth.mfa.recoveryCodes.getStatus();
  assert.equal(status.error, null, status.error?.message);
  assert.deepEqual([status.data.total, status.data.remaining], [10, 9]);

  const factors = await auth.mfa.listFactors();
  assert.equal(factors.error, null, factors.error?.message);
  assert.equal(factors.data.totp.length, 1);
  assert.equal(factors.data.totp[0].status, 'verified');

  // A second factor, challenged and verified step by step, then removed.
  const second = await auth.mfa.enroll({ factorType: 'totp', friendlyName: 'tablet' });
  assert.equal(second.error, null, second.error?.message);
  const challenge = await auth.mfa.challenge({ factorId: second.data.id });
  assert.equal(challenge.error, null, challenge.error?.message);
  const step = await auth.mfa.verify({ factorId: second.data.id, challengeId: challenge.data.id, code: totp(second.data.totp.secret) });
  assert.equal(step.error, null, step.error?.message);
  const removed = await auth.mfa.unenroll({ factorId: second.data.id });
  assert.equal(removed.error, null, removed.error?.message);
  assert.equal((await auth.mfa.listFactors()).data.totp.length, 1);

  assert.equal((await auth.signOut()).error, null);
});

test('signInWithOtp mails a link and a code; verifyOtp signs in; unknown addresses look the same', async () => {
  const { address } = await account('otp');
  const auth = client();
  const before = mailsTo(address, /sign-in link/).length;

  const sent = await auth.signInWithOtp({ email: address, options: { shouldCreateUser: false } });
  assert.equal(sent.error, null, sent.error?.message);
  assert.deepEqual(sent.data, { user: null, session: null });
  const mail = await nextMail(address, /sign-in link/, before);
  const code = /enter this code: (\d{6})/.exec(mail.text)[1];

  // The same answer for an address without an account, and no mail for it.
  const stranger = `nobody-${Date.now()}@acme.io`;
  const unknown = await auth.signInWithOtp({ email: stranger });
  assert.equal(unknown.error, null, 'no enumeration');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(mailsTo(stranger).length, 0);

  const wrong = await auth.verifyOtp({ email: address, token: String((Number(code) + 1) % 1e6).padStart(6, '0'), type: 'email' });
  assert.equal(wrong.error?.code, 'otp_expired');

  const ok = await auth.verifyOtp({ email: address, token: code, type: 'email' });
  assert.equal(ok.error, null, ok.error?.message);
  assert.equal(ok.data.user.email, address);
  assert.ok(ok.data.session.access_token);

  // Used once; its twin link is spent with it.
  const again = await client().verifyOtp({ email: address, token: code, type: 'email' });
  assert.equal(again.error?.code, 'otp_expired');
  const link = new URL(/https:\/\/\S+/.exec(mail.text)[0]);
  const twin = await client().verifyOtp({ token_hash: /token hash for API clients\): ([0-9a-f]{64})/.exec(mail.text)[1], type: 'magiclink' });
  assert.equal(twin.error?.code, 'otp_expired', link.href);

  // A second request within a minute sends nothing new.
  const count = mailsTo(address, /sign-in link/).length;
  assert.equal((await auth.signInWithOtp({ email: address })).error, null);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(mailsTo(address, /sign-in link/).length, count);
});

test('PKCE: the mailed link returns a code that only this client can exchange', async () => {
  const { address } = await account('pkce');
  const auth = client('pkce');
  const before = mailsTo(address, /sign-in link/).length;
  const redirectTo = `${BASE}/account?from=otp`;
  const sent = await auth.signInWithOtp({ email: address, options: { emailRedirectTo: redirectTo } });
  assert.equal(sent.error, null, sent.error?.message);
  const mail = await nextMail(address, /sign-in link/, before);
  const link = /https:\/\/\S+/.exec(mail.text)[0];

  const res = await fetch(link, { redirect: 'manual' });
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'));
  assert.equal(`${back.origin}${back.pathname}`, `${BASE}/account`);
  assert.equal(back.searchParams.get('from'), 'otp');
  assert.equal(res.headers.getSetCookie().length, 0, 'the browser is not signed in: the client is');
  const code = back.searchParams.get('code');
  assert.ok(code);

  // Someone else with the code but not the verifier gets nothing, and spends the code.
  const thief = await fetch(`${BASE}/auth/v1/token?grant_type=pkce`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth_code: code, code_verifier: 'x'.repeat(64) }),
  });
  assert.equal(thief.status, 400);
  assert.equal((await thief.json()).error_code, 'bad_code_verifier');
  const late = await auth.exchangeCodeForSession(code);
  assert.equal(late.error?.code, 'flow_state_not_found');

  // Another account's link, exchanged by its own client.
  const other = (await account('pkce-2')).address;
  const again = await auth.signInWithOtp({ email: other, options: { emailRedirectTo: redirectTo } });
  assert.equal(again.error, null);
  const mail2 = await nextMail(other, /sign-in link/, 0);
  const res2 = await fetch(/https:\/\/\S+/.exec(mail2.text)[0], { redirect: 'manual' });
  const code2 = new URL(res2.headers.get('location')).searchParams.get('code');
  const exchanged = await auth.exchangeCodeForSession(code2);
  assert.equal(exchanged.error, null, exchanged.error?.message);
  assert.equal(exchanged.data.user.email, other);
  assert.equal((await auth.getUser()).data.user.email, other);
});

test('updateUser, reauthenticate, getClaims, getUserIdentities, settings and health', async () => {
  const { auth, address } = await account('update', 'pkce');

  const data = await auth.updateUser({ data: { team: 'growth' } });
  assert.equal(data.error, null, data.error?.message);
  assert.equal(data.data.user.user_metadata.team, 'growth');

  const newPassword = 'copper heron waits by the river 7';
  const bare = await auth.updateUser({ password: newPassword });
  assert.equal(bare.error?.code, 'reauthentication_needed');

  const before = mailsTo(address, /Confirm it is you/).length;
  const re = await auth.reauthenticate();
  assert.equal(re.error, null, re.error?.message);
  const nonce = /confirm it is you: (\d{6})/.exec((await nextMail(address, /Confirm it is you/, before)).text)[1];
  const tooSoon = await auth.reauthenticate();
  assert.equal(tooSoon.error?.status, 429);

  const wrong = await auth.updateUser({ password: newPassword, nonce: String((Number(nonce) + 1) % 1e6).padStart(6, '0') });
  assert.equal(wrong.error?.code, 'reauthentication_not_valid');
  const changed = await auth.updateUser({ password: newPassword, nonce });
  assert.equal(changed.error, null, changed.error?.message);
  const reused = await auth.updateUser({ password: 'another long passphrase for here 9', nonce });
  assert.equal(reused.error?.code, 'reauthentication_not_valid', 'a nonce works once');
  const signIn = await client().signInWithPassword({ email: address, password: newPassword });
  assert.equal(signIn.error, null, signIn.error?.message);

  const claims = await auth.getClaims();
  assert.equal(claims.error, null, claims.error?.message);
  assert.equal(claims.data.claims.email, address);
  assert.equal(claims.data.claims.aal, 'aal1');

  const ids = await auth.getUserIdentities();
  assert.equal(ids.error, null, ids.error?.message);
  assert.deepEqual(ids.data.identities.map((i) => i.provider), ['email']);
  assert.equal(ids.data.identities[0].identity_data.email, address);

  // A lost confirmation mail, sent again; the same answer for an address with nothing to confirm.
  const late = `late-${Date.now()}@acme.io`;
  assert.equal((await client().signUp({ email: late, password })).error, null);
  const resent = await client().resend({ type: 'signup', email: late });
  assert.equal(resent.error, null, resent.error?.message);
  const second = await nextMail(late, /Confirm your LeadGen account/, 1);
  const hash = /token hash for API clients\): ([0-9a-f]{64})/.exec(second.text)[1];
  assert.equal((await client().verifyOtp({ token_hash: hash, type: 'signup' })).error, null);
  assert.equal((await client().resend({ type: 'signup', email: address })).error, null, 'no enumeration');
  assert.equal((await client().resend({ type: 'signup', email: `nobody-${Date.now()}@acme.io` })).error, null);

  const settings = await (await fetch(`${BASE}/auth/v1/settings`)).json();
  assert.equal(settings.external.email, true);
  assert.equal(settings.external.google, true);
  assert.equal(settings.external.phone, false);
  assert.equal(settings.disable_signup, false);
  const health = await fetch(`${BASE}/auth/v1/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).name, 'LeadGen');

  const reset = await client('pkce').resetPasswordForEmail(address, { redirectTo: `${BASE}/account` });
  assert.equal(reset.error, null, reset.error?.message);
  const phone = await client().signInWithOtp({ phone: '+15555550100' });
  assert.equal(phone.error?.code, 'phone_provider_disabled');
});

test('signInWithOAuth with Google in the PKCE flow, through a real OpenID provider', async () => {
  const issuer = process.env.LEADGEN_OIDC_ISSUER;
  assert.ok(issuer, 'LEADGEN_OIDC_ISSUER is set by it::e2e');
  const address = `oauth-${Date.now()}@acme.io`;
  const queued = await fetch(`${issuer}/test/next-login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: `google-${Date.now()}`, email: address, email_verified: true, name: 'Olga Petrova' }),
  });
  assert.equal(queued.status, 200);

  // The implicit flow would put tokens in a URL: refused with the reason.
  const implicit = await client().signInWithOAuth({ provider: 'google', options: { skipBrowserRedirect: true } });
  const refused = await fetch(implicit.data.url, { redirect: 'manual' });
  assert.equal(refused.status, 400);
  assert.match((await refused.json()).msg, /PKCE/);

  const auth = client('pkce');
  const { data, error } = await auth.signInWithOAuth({
    provider: 'google',
    options: { redirectTo: `${BASE}/account`, skipBrowserRedirect: true },
  });
  assert.equal(error, null, error?.message);
  assert.match(data.url, /\/auth\/v1\/authorize\?provider=google&.*code_challenge=/);

  const get = browser();
  const started = await get(data.url);
  assert.equal(started.status, 303);
  let url = started.headers.get('location');
  assert.ok(url.startsWith(issuer), url);
  let res;
  for (let i = 0; i < 12; i++) {
    res = await get(url);
    if (res.status < 300 || res.status >= 400) break;
    url = new URL(res.headers.get('location'), url).href;
    if (url.startsWith(`${BASE}/account`)) break;
  }
  const back = new URL(url);
  assert.equal(`${back.origin}${back.pathname}`, `${BASE}/account`, `ended at ${url}`);
  const code = back.searchParams.get('code');
  assert.ok(code, url);

  const exchanged = await auth.exchangeCodeForSession(code);
  assert.equal(exchanged.error, null, exchanged.error?.message);
  assert.equal(exchanged.data.user.email, address);
  assert.equal((await auth.getUser()).data.user.email, address);
  const ids = await auth.getUserIdentities();
  assert.deepEqual(ids.data.identities.map((i) => i.provider), ['google'], 'a Google account without a password');
  assert.equal(exchanged.data.user.app_metadata.provider, 'google');
  assert.equal((await auth.signOut()).error, null);
});
