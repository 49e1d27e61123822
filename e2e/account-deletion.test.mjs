// Deleting one's account in Chromium: sign up, confirm by mail, sign in, ask for the deletion on
// the account page (a wrong password is refused on the page), be signed out with the date, and
// find the session gone. Driven by the Rust test it::e2e::account_deletion_in_chromium, which
// sets LEADGEN_BASE_URL, LEADGEN_MAILBOX_DIR, LEADGEN_DELETE_EMAIL and LEADGEN_DELETE_UA, then
// runs the deletion job after the grace period and searches the database for what is left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.LEADGEN_BASE_URL || '').replace(/\/+$/, '');
const MAILBOX = process.env.LEADGEN_MAILBOX_DIR;
const EMAIL = process.env.LEADGEN_DELETE_EMAIL;
const UA = process.env.LEADGEN_DELETE_UA;
if (!BASE || !MAILBOX || !EMAIL || !UA) {
  throw new Error('LEADGEN_BASE_URL, LEADGEN_MAILBOX_DIR, LEADGEN_DELETE_EMAIL and LEADGEN_DELETE_UA must be set (run through it::e2e)');
}
const SHOTS = resolve(process.env.LEADGEN_SCREENSHOT_DIR || 'e2e/screenshots');

const mails = () => readdirSync(MAILBOX).filter((f) => f.endsWith('.json')).sort()
  .map((f) => JSON.parse(readFileSync(join(MAILBOX, f), 'utf8')));

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { if (browser) await browser.close(); });

test('ask for the deletion of one\'s account on the account page', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, userAgent: UA });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const password = 'juniper lantern drifts over the bay 4';

  await page.goto(`${BASE}/signup`);
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Check your email');
  const confirmation = mails().find((m) => m.to === EMAIL);
  assert.ok(confirmation, 'confirmation mail');
  const link = new URL(/https:\/\/\S+/.exec(confirmation.text)[0]);
  assert.equal((await page.goto(`${BASE}${link.pathname}${link.search}`)).status(), 200);

  await page.goto(`${BASE}/login`);
  await page.fill('input[name=email]', EMAIL);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}/account`);

  // A wrong password is refused where it was typed; nothing is scheduled.
  await page.fill('form.delete-account-form input[name=password]', 'not the password at all');
  await page.click('button.delete-account');
  await page.waitForSelector('.delete-error');
  assert.match(await page.textContent('.delete-error'), /Invalid login credentials/);
  assert.equal(await page.textContent('.account-email'), EMAIL, 'still signed in');

  await page.fill('form.delete-account-form input[name=password]', password);
  await page.click('button.delete-account');
  await page.waitForSelector('text=Your account will be deleted');
  const message = await page.textContent('.lead');
  assert.match(message, /will be deleted on \d{1,2} \w+ \d{4} at \d\d:\d\d UTC/);
  assert.match(message, /Sign in before then to cancel/);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'account-deletion.png'), fullPage: true });

  // Signed out: the account page sends us to sign in, and the mail says when.
  const gone = await page.goto(`${BASE}/account`);
  assert.ok(gone.url().endsWith('/login'), `signed out, at ${gone.url()}`);
  const scheduled = mails().find((m) => m.to === EMAIL && m.subject === 'Your LeadGen account will be deleted');
  assert.ok(scheduled, 'the scheduling mail');
  assert.match(scheduled.text, /sign in before then/);
  // The refused attempt is a 400 page, which Chromium reports; anything else is a problem.
  assert.deepEqual(problems.filter((p) => !/status of 400/.test(p)), []);
  await context.close();
});
