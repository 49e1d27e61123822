// A capture form embedded on another site, in Chromium: the organization's page (a second local
// origin, served here on LEADGEN_SITE_PORT) carries the embed snippet LeadGen gave; a person
// submits it with the script and without it; a bot that fills the honeypot gets the same answer;
// a page of an origin not on the form's list is refused.
//
// Driven by the Rust test `it::e2e::capture_form_in_chromium`, which creates the form through the
// API first (allowing http://127.0.0.1:LEADGEN_SITE_PORT) and afterwards checks the leads and
// consent records in the organization. Needs LEADGEN_BASE_URL, LEADGEN_SITE_PORT,
// LEADGEN_FORM_KEY and LEADGEN_FORM_EMBED.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v || !v.trim()) {
    // Never skip: a missing variable is a broken test setup, not a pass.
    throw new Error(`${name} is not set; this test is run by it::e2e::capture_form_in_chromium`);
  }
  return v;
}

const BASE = need('LEADGEN_BASE_URL').trim().replace(/\/+$/, '');
const SITE_PORT = Number(need('LEADGEN_SITE_PORT'));
const KEY = need('LEADGEN_FORM_KEY');
const EMBED = need('LEADGEN_FORM_EMBED');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = process.env.LEADGEN_SCREENSHOT_DIR || 'screenshots';
const TIMEOUT = 60_000;

// The snippet as an organization's page would hold it, with and without its optional script.
const PLAIN = EMBED.split('\n').filter((l) => !l.startsWith('<script')).join('\n');
const page_of = (snippet) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Shop</title></head><body><h1>Shop: ask for a demo</h1>${snippet}</body></html>`;
const ROUTES = { '/': page_of(EMBED), '/plain': page_of(PLAIN) };

function serve(port) {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const where = new URL(req.url, 'http://x').pathname;
      if (where === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      const body = ROUTES[where];
      res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
      res.end(body || 'not found');
    });
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

let browser, site, foreign;

before(async () => {
  site = await serve(SITE_PORT);
  foreign = await serve(0); // another origin, not on the form's list
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  site?.close();
  foreign?.close();
});

async function open() {
  // LeadGen's development certificate is self-signed.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { context, page, errors };
}

async function fillPerson(page, email) {
  await page.fill('input[name=email]', email);
  await page.fill('input[name=first_name]', 'Ada');
  await page.fill('input[name=company_name]', 'Analytical Engines');
  await page.check('input[name=consent]');
}

const afterPost = (page) => page.waitForResponse(
  (r) => r.url() === `${BASE}/f/${KEY}` && r.request().method() === 'POST');

test('a person submits the embedded form with its script and sees the thank-you in the page', { timeout: TIMEOUT }, async () => {
  const { context, page, errors } = await open();
  try {
    const stamp = page.waitForResponse((r) => r.url() === `${BASE}/f/${KEY}/stamp`);
    await page.goto(`http://127.0.0.1:${SITE_PORT}/`);
    assert.equal((await stamp).status(), 200, 'the script fetched a stamp');
    assert.ok(await page.inputValue('input[name=lg_stamp]'), 'the stamp is in the form');
    // The honeypot is out of sight for a person.
    const box = await page.locator('input[name=homepage_url]').boundingBox();
    assert.ok(!box || box.x < 0, `the honeypot is off-screen: ${JSON.stringify(box)}`);
    // Inline validation: nothing is posted while a required field is empty.
    await page.click('button[type=submit]');
    assert.match(await page.textContent('.leadgen-errors'), /email/);
    await fillPerson(page, 'ada@shop-visitor.example');
    await page.waitForTimeout(4000); // a person takes longer than the minimum fill time
    const posted = afterPost(page);
    await page.click('button[type=submit]');
    assert.equal((await posted).status(), 200);
    await page.waitForSelector('.leadgen-thanks');
    assert.match(await page.textContent('.leadgen-thanks'), /We will be in touch/);
    assert.equal(new URL(page.url()).origin, `http://127.0.0.1:${SITE_PORT}`, 'still on the site');
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'capture-form.png') });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

let personPage;

test('the plain snippet works without JavaScript', { timeout: TIMEOUT }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
  const page = await context.newPage();
  try {
    await page.goto(`http://127.0.0.1:${SITE_PORT}/plain`);
    await fillPerson(page, 'bob@shop-visitor.example');
    const posted = afterPost(page);
    await page.click('button[type=submit]');
    assert.equal((await posted).status(), 200);
    await page.waitForLoadState('load');
    assert.equal(new URL(page.url()).pathname, `/f/${KEY}`);
    personPage = await page.textContent('main');
    assert.match(personPage, /Thank you/);
  } finally {
    await context.close();
  }
});

test('a bot that fills the honeypot gets the same success page', { timeout: TIMEOUT }, async () => {
  const { context, page } = await open();
  try {
    await page.goto(`http://127.0.0.1:${SITE_PORT}/plain`);
    await fillPerson(page, 'bot@shop-visitor.example');
    // What a form-filling bot does: every field gets a value.
    await page.evaluate(() => { document.querySelector('input[name=homepage_url]').value = 'http://spam.example'; });
    const posted = afterPost(page);
    await page.click('button[type=submit]');
    assert.equal((await posted).status(), 200);
    await page.waitForLoadState('load');
    assert.equal(await page.textContent('main'), personPage, 'exactly the page a person gets');
  } finally {
    await context.close();
  }
});

test('a page of an origin not on the list is refused', { timeout: TIMEOUT }, async () => {
  const { context, page } = await open();
  try {
    const port = foreign.address().port;
    await page.goto(`http://127.0.0.1:${port}/plain`);
    await fillPerson(page, 'eve@shop-visitor.example');
    const posted = afterPost(page);
    await page.click('button[type=submit]');
    assert.equal((await posted).status(), 403);
    await page.waitForLoadState('load');
    assert.match(await page.textContent('main'), /may not post/);
  } finally {
    await context.close();
  }
});

test('the member sees the submissions counted on the form page', { timeout: TIMEOUT }, async () => {
  const { context, page, errors } = await open();
  try {
    // The member's session, as the sign-in page would have set it.
    await context.addCookies([{ name: '__Host-lg-access', value: need('LEADGEN_ACCESS_TOKEN'),
      url: `${BASE}/`, secure: true, httpOnly: true, sameSite: 'Lax' }]);
    const res = await page.goto(`${BASE}/forms/${need('LEADGEN_FORM_ID')}`);
    assert.equal(res.status(), 200);
    assert.equal(await page.textContent('nav.appnav a[aria-current="page"]'), 'Forms');
    const cells = await page.locator('table.form-counters tbody td').allTextContents();
    // Status, views, submissions, spam caught, new leads.
    assert.deepEqual(cells.map((c) => c.trim()), ['active', '1', '2', '1', '2']);
    assert.match(await page.inputValue('textarea.embed'), new RegExp(`/f/${KEY}"`));
    await page.screenshot({ path: path.join(SHOTS, 'capture-form-page.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
