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

function client() {
  return new AuthClient({
    url: `${BASE}/auth/v1`,
    persistSession: false,
    autoRefreshToken: false,
    experimental: { recoveryCodes: true },
  });
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

  assert.equal((await auth.signOut()).error, null);
});
