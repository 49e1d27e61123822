// The app shell in Chromium: a new user signs up and in from the landing page, then reaches every
// signed-in page through the navigation and the links on the pages alone (the only addresses
// typed are the landing page and the mailed confirmation link). On each page: the current section
// is marked in the navigation, no time shows as a raw RFC 3339 timestamp, a 1280x800 screenshot
// is saved, and nothing is loaded from another origin. The organization switcher moves the session
// between two organizations. Driven by the Rust test it::e2e::app_shell_in_chromium, which sets
// LEADGEN_BASE_URL, LEADGEN_MAILBOX_DIR and LEADGEN_SCREENSHOT_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.LEADGEN_BASE_URL || '').replace(/\/+$/, '');
const MAILBOX = process.env.LEADGEN_MAILBOX_DIR;
if (!BASE || !MAILBOX) {
  throw new Error('LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR must be set (run through it::e2e)');
}
const SHOTS = resolve(process.env.LEADGEN_SCREENSHOT_DIR || 'e2e/screenshots');
const ORIGIN = new URL(BASE).origin;
// A time as a machine writes it: 2026-12-02T05:25 (with or without seconds and zone).
const RFC3339 = /\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { if (browser) await browser.close(); });

test('every signed-in page is reached through the navigation, marked, readable and local', { timeout: 180_000 }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const foreign = [];
  const problems = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('data:') && new URL(url).origin !== ORIGIN) foreign.push(url);
  });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  mkdirSync(SHOTS, { recursive: true });

  // Checks the page the browser is on, as a signed-in user sees it.
  const seen = [];
  async function check(name, section) {
    await page.waitForLoadState('load');
    const marked = page.locator('nav.appnav a[aria-current="page"]');
    assert.equal(await marked.count(), 1, `${name}: one section is marked`);
    assert.equal((await marked.textContent()).trim(), section, `${name}: ${section} is the current section`);
    const text = await page.evaluate(() => document.body.innerText);
    const raw = RFC3339.exec(text);
    assert.equal(raw, null, `${name}: a raw timestamp is shown: ${raw && raw[0]}`);
    for (const title of await page.locator('time[title]').evaluateAll((ts) => ts.map((t) => t.title))) {
      assert.doesNotMatch(title, RFC3339, `${name}: a time's exact form reads as people read it`);
    }
    await page.screenshot({ path: join(SHOTS, `shell-${name}.png`) });
    seen.push(name);
  }
  const nav = async (label) => {
    await Promise.all([page.waitForNavigation(), page.click(`nav.appnav a:text-is("${label}")`)]);
  };

  // Signing up and in, from the landing page's own links.
  const email = `shell-${Date.now()}@acme.io`;
  const password = 'saffron kettle orbits the moon 7';
  await page.goto(`${BASE}/`);
  await Promise.all([page.waitForNavigation(), page.click('header a:text-is("Sign up")')]);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Check your email');
  const mail = readdirSync(MAILBOX).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(MAILBOX, f), 'utf8'))).find((m) => m.to === email);
  assert.ok(mail, 'confirmation mail delivered');
  const link = new URL(/https:\/\/\S+/.exec(mail.text)[0]);
  await page.goto(`${BASE}${link.pathname}${link.search}`);
  await page.waitForURL(`${BASE}/account`);
  await check('account-new', 'Account');
  assert.match(await page.textContent('.viewer'), /No organization yet/);
  // Without an organization, its pages send the user to create one, and say why.
  await nav('Leads');
  assert.equal(new URL(page.url()).pathname, '/org');
  assert.match(await page.textContent('.notice'), /belong to an organization/);
  await check('organization-needed', 'Organization');

  // An organization, created from its page: the shell then shows it and the role.
  await nav('Organization');
  await page.fill('form.create-org input[name=name]', 'Shell Works');
  await Promise.all([page.waitForNavigation(), page.click('form.create-org button[type=submit]')]);
  assert.equal(await page.textContent('h1'), 'Shell Works');
  assert.equal((await page.textContent('.viewer-role')).trim(), 'admin');
  await check('organization', 'Organization');

  // Data for the other pages: a lead whose domain makes a company (through the API, with the
  // session's own token), and a list made on its page.
  const access = (await context.cookies()).find((c) => c.name === '__Host-lg-access').value;
  const created = await page.request.post(`${BASE}/api/v1/leads`, {
    headers: { Authorization: `Bearer ${access}`, Origin: BASE },
    data: { first_name: 'Grace', last_name: 'Hopper', email: 'grace@cobol.example',
      company_name: 'Cobol Systems', company_domain: 'cobol.example', title: 'Rear Admiral' },
  });
  assert.equal(created.status(), 201, await created.text());

  await nav('Lists');
  await page.fill('form.create-list input[name=name]', 'Conference follow-ups');
  await Promise.all([page.waitForNavigation(), page.click('form.create-list button[type=submit]')]);
  await check('lists', 'Lists');

  await nav('Leads');
  await check('leads', 'Leads');
  assert.ok((await page.textContent('table.lead-table')).includes('Grace Hopper'));
  await Promise.all([page.waitForNavigation(), page.click('table.lead-table tbody a:text("Grace Hopper")')]);
  await check('lead', 'Leads');
  assert.ok(await page.locator('.lead time[datetime][title]').count() > 0, 'the lead page shows its dates');
  await page.selectOption('form.add-to-list select[name=list_id]', { label: 'Conference follow-ups' });
  await Promise.all([page.waitForNavigation(), page.click('form.add-to-list button[type=submit]')]);
  assert.match(await page.textContent('.notice'), /Added to the list/);
  await Promise.all([page.waitForNavigation(), page.click('a.company-link')]);
  await check('company', 'Companies');

  // The list opens the leads table filtered to it.
  await nav('Lists');
  assert.equal((await page.textContent("table.list-table tbody td.num")).trim(), "1", "the lead is in the list");
  await Promise.all([page.waitForNavigation(), page.click('table.list-table a:text("Conference follow-ups")')]);
  await check('list-leads', 'Leads');
  assert.match(await page.textContent('.filter-chip'), /Conference follow-ups/);
  assert.ok((await page.textContent('table.lead-table')).includes('Grace Hopper'));

  await nav('Companies');
  await check('companies', 'Companies');
  assert.ok((await page.textContent('table.company-table')).includes('Cobol Systems'));

  await nav('Import');
  await check('import', 'Import');

  await nav('Scoring');
  await check('scoring', 'Scoring');

  await nav('Campaigns');
  await check('campaigns', 'Campaigns');
  await Promise.all([page.waitForNavigation(), page.click('a[href="/campaigns/templates"] >> nth=0')]);
  await check('campaign-templates', 'Campaigns');

  await nav('Account');
  await check('account', 'Account');
  assert.ok(await page.locator('table.sessions time[datetime][title]').count() > 0, 'sessions show when they started');
  await Promise.all([page.waitForNavigation(), page.click('text=Set up an authenticator app')]);
  await check('account-mfa', 'Account');

  // Sortable headers: the members table sorts by a column when its header is pressed.
  await nav('Organization');
  const header = page.locator('table.members th button.sort:text-is("Email")');
  await header.click();
  assert.equal(await page.locator('table.members th:has(button.sort:text-is("Email"))').getAttribute('aria-sort'), 'ascending');

  // A second organization, then the switcher on another page moves the session back.
  await page.fill('form.create-org input[name=name]', 'Second Shop');
  await Promise.all([page.waitForNavigation(), page.click('form.create-org button[type=submit]')]);
  assert.match(await page.textContent('.org-select'), /Second Shop/);
  await nav('Leads');
  assert.equal(await page.locator('table.lead-table tbody tr').count(), 0, 'the new organization has no leads');
  await Promise.all([
    page.waitForNavigation(),
    page.selectOption('form.org-switch select.org-select', { label: 'Shell Works (admin)' }),
  ]);
  assert.equal(new URL(page.url()).pathname, '/leads', 'the switcher returns to the same section');
  assert.ok((await page.textContent('table.lead-table')).includes('Grace Hopper'), 'back in the first organization');
  await check('switched', 'Leads');

  // Sign-out is in the shell on every page.
  await Promise.all([page.waitForNavigation(), page.click('button.signout')]);
  assert.match(page.url(), /\/login\?notice=signed-out$/);

  assert.deepEqual(foreign, [], 'nothing is loaded from another origin');
  assert.deepEqual(problems, [], 'no console errors');
  assert.deepEqual(seen, ['account-new', 'organization-needed', 'organization', 'lists', 'leads', 'lead', 'company',
    'list-leads', 'companies', 'import', 'scoring', 'campaigns', 'campaign-templates', 'account', 'account-mfa', 'switched']);
});
