// An operator signs in to the console in Chromium with password and authenticator code, blocks an
// address at the WAF and unblocks it, each action with a new code; the block is seen by a client
// from that address within a second, and lifted as fast.
//
// Driven by the Rust integration test `it::e2e::operator_console_in_chromium`, which creates the
// operator (`leadgen operator add`) and sets LEADGEN_BASE_URL, LEADGEN_OPERATOR_EMAIL,
// LEADGEN_OPERATOR_PASSWORD and LEADGEN_OPERATOR_SECRET.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { chromium } from 'playwright-core';
import { totp } from './totp.mjs';

const BASE = (process.env.LEADGEN_BASE_URL || '').replace(/\/+$/, '');
const EMAIL = process.env.LEADGEN_OPERATOR_EMAIL;
const PASSWORD = process.env.LEADGEN_OPERATOR_PASSWORD;
const SECRET = process.env.LEADGEN_OPERATOR_SECRET;
if (!BASE || !EMAIL || !PASSWORD || !SECRET) {
  throw new Error('LEADGEN_BASE_URL and LEADGEN_OPERATOR_* must be set (run through it::e2e)');
}
// The address the operator blocks: a second loopback address this script can send from.
const BLOCKED = '127.0.0.7';

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});
after(async () => {
  if (browser) await browser.close();
});

// Each code works once: wait for the authenticator's next one.
let lastStep = 0;
async function freshCode() {
  while (Math.floor(Date.now() / 1000 / 30) <= lastStep) {
    await new Promise((r) => setTimeout(r, 250));
  }
  lastStep = Math.floor(Date.now() / 1000 / 30);
  return totp(SECRET);
}

// The status of GET /login sent from `localAddress`.
function statusFrom(localAddress) {
  return new Promise((resolve) => {
    const req = https.get(`${BASE}/login`, { localAddress }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
  });
}

async function within(ms, probe) {
  const start = Date.now();
  while (Date.now() - start < 5000) {
    if (await probe()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  return Infinity;
}

test('an operator signs in with password and code, then blocks and unblocks an address', { timeout: 150_000 }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  try {
    // Not signed in: the console sends to its own sign-in page.
    await page.goto(`${BASE}/operator`);
    assert.equal(new URL(page.url()).pathname, '/operator/login');

    // A wrong code fails like a wrong password, saying nothing about which.
    await page.fill('input[name=email]', EMAIL);
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=code]', '000000');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    assert.match(await page.textContent('[role=alert]'), /Invalid email, password or code/);

    await page.fill('input[name=email]', EMAIL);
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=code]', await freshCode());
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    assert.equal(new URL(page.url()).pathname, '/operator');
    assert.match(await page.textContent('h1'), /Operator console/);
    assert.equal(await page.textContent('[data-health=database]'), 'answering');
    // The password is checked on the server: it is nowhere in what the browser received.
    assert.ok(!(await page.content()).includes(PASSWORD));
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === '__Host-lg_operator');
    assert.ok(session && session.httpOnly && session.secure && session.sameSite === 'Strict', JSON.stringify(cookies));

    assert.equal(await statusFrom(BLOCKED), 200);
    await page.fill('[data-block-form] input[name=ip]', BLOCKED);
    const blockCode = await freshCode();
    await page.fill('[data-block-form] input[name=code]', blockCode);
    await Promise.all([page.waitForNavigation(), page.click('[data-block-form] button[type=submit]')]);
    if (!(await page.isVisible('[data-notice]'))) {
      assert.fail(`no notice after the block at ${page.url()}: ${(await page.textContent('main')) ?? ''}`);
    }
    assert.match(await page.textContent('[data-notice]'), /blocked on every instance/);
    assert.ok(await page.isVisible(`[data-block="${BLOCKED}/32"]`));
    const blocked = await within(1000, async () => (await statusFrom(BLOCKED)) === 403);
    assert.ok(blocked < 1000, `blocked after ${blocked} ms`);
    assert.equal(await statusFrom('127.0.0.1'), 200);

    // The same code twice is refused.
    await page.fill(`[data-block="${BLOCKED}/32"] input[name=code]`, blockCode);
    await Promise.all([page.waitForNavigation(), page.click(`[data-block="${BLOCKED}/32"] button[type=submit]`)]);
    assert.match(await page.textContent('[role=alert]'), /wrong or used already/);
    assert.equal(await statusFrom(BLOCKED), 403);

    await page.fill(`[data-block="${BLOCKED}/32"] input[name=code]`, await freshCode());
    await Promise.all([page.waitForNavigation(), page.click(`[data-block="${BLOCKED}/32"] button[type=submit]`)]);
    assert.match(await page.textContent('[data-notice]'), /unblocked/);
    const lifted = await within(1000, async () => (await statusFrom(BLOCKED)) === 200);
    assert.ok(lifted < 1000, `unblocked after ${lifted} ms`);
    // The block and the unblock are on the console's incident timeline.
    const timeline = await page.textContent('[data-incident]');
    assert.match(timeline, /block/);
    assert.match(timeline, /unblock/);
  } finally {
    await context.close();
  }
});
