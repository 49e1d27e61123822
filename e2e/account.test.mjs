// The account pages in Chromium: sign up, open the confirmation mail from the development
// mailbox, sign in, turn on an authenticator app (the test computes the codes), sign out, and
// sign in again with the second factor; then the organization page: create an organization,
// an API key (shown once) and an invitation, and read them in the audit log. Driven by the Rust test it::e2e::account_pages_in_chromium,
// which sets LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { totp } from './totp.mjs';

const BASE = (process.env.LEADGEN_BASE_URL || '').replace(/\/+$/, '');
const MAILBOX = process.env.LEADGEN_MAILBOX_DIR;
if (!BASE || !MAILBOX) {
  throw new Error('LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR must be set (run through it::e2e)');
}
const SHOTS = resolve(process.env.LEADGEN_SCREENSHOT_DIR || 'e2e/screenshots');


let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { if (browser) await browser.close(); });

test('sign up, confirm by mail, sign in, enable TOTP, sign out, sign in with TOTP', { timeout: 120_000 }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));

  const email = `browser-${Date.now()}@acme.io`;
  const password = 'saffron kettle orbits the moon 7';

  await page.goto(`${BASE}/signup`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Check your email');

  const mail = readdirSync(MAILBOX).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(MAILBOX, f), 'utf8'))).find((m) => m.to === email);
  assert.ok(mail, 'confirmation mail delivered to the development mailbox');
  const link = new URL(/https:\/\/\S+/.exec(mail.text)[0]);
  const confirmed = await page.goto(`${BASE}${link.pathname}${link.search}`);
  assert.equal(confirmed.status(), 200);

  await page.goto(`${BASE}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}/account`);
  assert.equal(await page.textContent('.account-email'), email);
  assert.equal(await page.textContent('.aal'), 'aal1');

  await page.click('text=Set up an authenticator app');
  await page.waitForURL(`${BASE}/account/mfa`);
  const secret = (await page.textContent('.totp-secret')).trim();
  const enrolledAt = Math.floor(Date.now() / 1000);
  await page.fill('input[name=code]', totp(secret, enrolledAt));
  await page.click('form.enroll-form button[type=submit]');
  await page.waitForURL(`${BASE}/account`);
  assert.match(await page.textContent('.mfa-status'), /authenticator app protects/);
  assert.equal(await page.textContent('.aal'), 'aal2');
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'account.png'), fullPage: true });

  await page.click('button.signout');
  await page.waitForURL(/\/login\?notice=signed-out$/);
  const gone = await page.goto(`${BASE}/account`);
  assert.ok(gone.url().endsWith('/login'), 'signed out: the account page sends us to sign in');

  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}/login/mfa`);
  // Each code works once: wait for the next time step after the one used to enrol.
  const nextStep = (Math.floor(enrolledAt / 30) + 1) * 30;
  const wait = nextStep * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 200));
  await page.fill('input[name=code]', totp(secret, Math.floor(Date.now() / 1000)));
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}/account`);
  assert.equal(await page.textContent('.aal'), 'aal2');

  // The organization page: create one, make an API key (shown once), invite a teammate, and
  // find all three in the audit log.
  await page.click('nav.appnav a:text("Organization")');
  await page.waitForURL(`${BASE}/org`);
  await page.fill('form.create-org input[name=name]', 'Browser Co');
  await page.click('form.create-org button[type=submit]');
  await page.waitForURL(`${BASE}/org?done=created`);
  assert.equal(await page.textContent('h1'), 'Browser Co');
  assert.equal(await page.textContent('.org-role'), 'admin');
  await page.fill('form.create-key input[name=name]', 'CI pipeline');
  const [keyResponse] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/org/api-keys`),
    page.click('form.create-key button[type=submit]'),
  ]);
  assert.equal(keyResponse.headers()['cache-control'], 'no-store');
  const key = (await page.textContent('.api-key')).trim();
  assert.match(key, /^lg_live_[0-9A-Za-z]{32}_[0-9a-f]{8}$/);
  await page.goto(`${BASE}/org`);
  assert.equal(await page.locator('.api-key').count(), 0, 'the key is shown only once');
  assert.ok((await page.textContent('table.api-keys')).includes(key.slice(0, 14)));
  await page.fill('form.invite input[name=email]', 'teammate@acme.io');
  await page.click('form.invite button[type=submit]');
  await page.waitForURL(`${BASE}/org?done=invited`);
  // A group for lead ACLs, with the admin in it.
  await page.fill('form.create-group input[name=name]', 'Enterprise desk');
  await page.click('form.create-group button[type=submit]');
  await page.waitForURL(`${BASE}/org?done=group`);
  await page.click('table.groups form.inline:has(select) button[type=submit]');
  await page.waitForURL(`${BASE}/org?done=group`);
  const groups = await page.textContent('table.groups');
  assert.ok(groups.includes('Enterprise desk') && groups.includes('@'), groups);
  const audit = await page.textContent('table.audit');
  for (const action of ['org.create', 'api_key.create', 'invitation.create', 'group.create', 'group.member.add']) {
    assert.ok(audit.includes(action), `${action} in the audit log`);
  }
  await page.screenshot({ path: join(SHOTS, 'org.png'), fullPage: true });

  // The leads pages: a lead made through the API with the session's own token, found in the
  // table, opened, its ACL set to the group and rolled back, and exported.
  const access = (await context.cookies()).find((c) => c.name === '__Host-lg-access').value;
  const created = await page.request.post(`${BASE}/api/v1/leads`, {
    headers: { Authorization: `Bearer ${access}`, Origin: BASE },
    data: { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@engines.example', company_name: 'Analytical Engines' },
  });
  assert.equal(created.status(), 201, await created.text());
  await page.goto(`${BASE}/leads`);
  assert.ok((await page.textContent('table.lead-table')).includes('Ada Lovelace'));
  assert.ok((await page.textContent('.lead-count')).includes('1'));
  await page.fill('form.lead-filters input[name=q]', 'lovelace -babbage');
  await page.click('form.lead-filters button[type=submit]');
  await page.waitForURL(/\/leads\?q=/);
  await page.click('table.lead-table tbody a');
  await page.waitForURL(/\/leads\/[0-9a-f-]{36}$/);
  assert.ok((await page.textContent('table.lead-fields')).includes('ada@engines.example'));
  await page.check('table.acl-groups input[name^=read_]');
  await page.selectOption('form.acl-form select[name=sensitivity]', 'restricted');
  await page.click('form.acl-form button[type=submit]');
  await page.waitForURL(/\?done=acl$/);
  assert.ok((await page.textContent('table.acl-revisions')).includes('restricted'));
  await page.screenshot({ path: join(SHOTS, 'lead.png'), fullPage: true });
  // Restricted: the contact details show only with a reason, which is recorded.
  assert.ok(!(await page.textContent('table.lead-fields')).includes('ada@engines.example'));
  await page.fill('form.reveal-form textarea[name=justification]', 'Calling Ada about the renewal');
  await page.click('form.reveal-form button[type=submit]');
  await page.waitForSelector('table.lead-fields');
  assert.ok((await page.textContent('table.lead-fields')).includes('ada@engines.example'));
  // Rolling back to revision 0 would open the lead to everyone: it waits for a second admin,
  // and the one who asked may only withdraw it.
  await page.goto(page.url().replace(/\/reveal$/, ''));
  await page.click('table.acl-revisions form.inline button[type=submit]');
  await page.waitForURL(/\?done=acl_pending$/);
  assert.equal(await page.locator('table.acl-revisions tbody tr').count(), 2, 'revisions 0 and 1, nothing applied');
  assert.ok((await page.textContent('.acl-pending')).includes('Waiting for a second admin'));
  assert.equal(await page.locator('button.approve-acl').count(), 0, 'no approving one\'s own request');
  assert.equal(await page.locator('table.acl-groups input[name^=read_]').isChecked(), true);
  await page.click('button.reject-acl');
  await page.waitForURL(/\?done=acl_rejected$/);
  assert.equal(await page.locator('.acl-pending').count(), 0);
  const exported = await page.request.get(`${BASE}/leads/export`);
  assert.equal(exported.status(), 200);
  const exportedCsv = await exported.text();
  assert.ok(exportedCsv.includes('Analytical Engines') && !exportedCsv.includes('ada@engines.example'), exportedCsv);
  await page.goto(`${BASE}/leads`);
  await page.screenshot({ path: join(SHOTS, 'leads.png'), fullPage: true });

  // The scoring model: saved from its page, a mistake named by its JSON path, and the lead
  // rescored in the background.
  await page.click('a[href="/leads/scoring"]');
  await page.waitForURL(`${BASE}/leads/scoring`);
  await page.fill('form.scoring-form textarea[name=model]', JSON.stringify({ rules: [
    { name: 'Reachable', field: 'has_email', points: 20 },
    { name: 'Decision maker', field: 'seniority', values: ['vp', 'c_level'], points: 40 },
  ] }));
  await page.click('form.scoring-form button[type=submit]');
  await page.waitForURL(/\/leads\/scoring\?done=saved$/);
  const rules = await page.textContent('table.scoring-rules');
  assert.ok(rules.includes('Reachable') && rules.includes('Decision maker'), rules);
  await page.fill('form.scoring-form textarea[name=model]', JSON.stringify({ rules: [
    { name: 'Bad', field: 'seniority', values: ['boss'], points: 5 },
  ] }));
  const before = problems.length;
  await page.click('form.scoring-form button[type=submit]');
  assert.ok((await page.textContent('.error-msg')).includes('rules[0].values[0]'));
  // The refused model answers 400 (the form comes back with the error), which the browser
  // reports once; nothing else may appear.
  assert.deepEqual(problems.splice(before).map((p) => p.includes('status of 400')), [true]);
  await page.screenshot({ path: join(SHOTS, 'scoring.png'), fullPage: true });
  const leadId = (await created.json()).id;
  let score = '';
  for (let i = 0; i < 50 && !score.includes('20'); i++) {
    await page.goto(`${BASE}/leads/${leadId}`);
    score = await page.textContent('table.lead-fields tr:has(th:text("Score")) td');
    if (!score.includes('20')) await page.waitForTimeout(200);
  }
  assert.equal(score.trim(), '20', 'the lead was rescored with the new model');

  // Notes, activity and a field-by-field merge of a duplicate (same name at the same domain).
  const graces = [];
  for (const data of [
    { first_name: 'Grace', last_name: 'Hopper', company_domain: 'navy.example', title: 'Rear Admiral' },
    { first_name: 'grace', last_name: 'HOPPER', company_domain: 'navy.example', title: 'Commodore', email: 'grace@navy.example' },
  ]) {
    const r = await page.request.post(`${BASE}/api/v1/leads`, {
      headers: { Authorization: `Bearer ${access}`, Origin: BASE }, data,
    });
    assert.equal(r.status(), 201, await r.text());
    graces.push((await r.json()).id);
  }
  const [graceId, dupId] = graces;
  await page.goto(`${BASE}/leads/${dupId}`);
  await page.fill('form.note-form textarea[name=body]', 'Invented the first compiler');
  await page.click('form.note-form button[type=submit]');
  await page.waitForURL(/\?done=note$/);
  await page.fill('form.activity-form input[name=summary]', 'Call about COBOL');
  await page.selectOption('form.activity-form select[name=kind]', 'call');
  await page.click('form.activity-form button[type=submit]');
  await page.waitForURL(/\?done=activity$/);
  await page.goto(`${BASE}/leads/${graceId}`);
  assert.ok((await page.textContent('form.merge-form')).includes('Commodore'));
  await page.check('form.merge-form input[name=take_title]');
  await page.screenshot({ path: join(SHOTS, 'merge.png'), fullPage: true });
  await page.click('form.merge-form button[type=submit]');
  await page.waitForURL(/\?done=merge$/);
  const merged = await page.textContent('table.lead-fields');
  assert.ok(merged.includes('Commodore') && merged.includes('grace@navy.example'), merged);
  assert.ok((await page.textContent('ul.notes')).includes('Invented the first compiler'));
  const timeline = await page.textContent('ul.activities');
  assert.ok(timeline.includes('Call about COBOL') && timeline.includes('Merged duplicate lead'), timeline);
  assert.equal((await page.goto(`${BASE}/leads/${dupId}`)).status(), 404);
  problems.splice(0).forEach((p) => assert.ok(p.includes('status of 404'), p));

  // The lead's company record: a NAICS code names its industry, and the change reaches the lead.
  await page.goto(`${BASE}/leads/${graceId}`);
  await page.click('a.company-link');
  await page.waitForURL(/\/companies\/[0-9a-f-]+$/);
  assert.ok((await page.textContent('table.lead-table')).includes('Grace'));
  await page.fill('form.company-form input[name=name]', 'US Navy');
  await page.fill('form.company-form input[name=naics]', '928110');
  await page.fill('form.company-form input[name=technologies]', 'COBOL, FLOW-MATIC');
  await page.click('form.company-form button[type=submit]');
  await page.waitForURL(/\?done=saved$/);
  assert.equal(await page.inputValue('form.company-form input[name=industry]'), 'Public Administration');
  await page.screenshot({ path: join(SHOTS, 'company.png'), fullPage: true });
  await page.goto(`${BASE}/leads/${graceId}`);
  const withCompany = await page.textContent('table.lead-fields');
  assert.ok(withCompany.includes('US Navy') && withCompany.includes('Public Administration'), withCompany);

  // Saved searches: the current filters under a name, shared; followed; deleted.
  await page.goto(`${BASE}/leads?q=commodore`);
  await page.click('details.saved-searches summary');
  await page.fill('form.segment-form input[name=name]', 'Commodores');
  await page.check('form.segment-form input[name=shared]');
  await page.click('form.segment-form button[type=submit]');
  await page.waitForURL(`${BASE}/leads?q=commodore`);
  await page.click('ul.segments a:text("Commodores")');
  await page.waitForURL(`${BASE}/leads?q=commodore`);
  assert.ok((await page.textContent('table.lead-table')).includes('Grace'));
  assert.ok((await page.textContent('ul.segments')).includes('shared'));
  await page.screenshot({ path: join(SHOTS, 'saved-searches.png'), fullPage: true });
  await page.click('ul.segments form button[type=submit]');
  await page.waitForURL(`${BASE}/leads`);
  assert.ok(!(await page.textContent('details.saved-searches')).includes('Commodores'));

  // The import wizard: upload (a file saved in Windows-1252, as Excel's plain CSV is), the
  // detected encoding, a wrong one picked and put right, the preview and the automatic mapping,
  // one column left out by hand, start, progress to the end, and the report of the bad email.
  await page.goto(`${BASE}/leads`);
  await page.click('a[href="/leads/import"]');
  await page.waitForURL(`${BASE}/leads/import`);
  const csv = 'First Name,Last Name,Email,Job Title,Company Name,Lead Source\n' +
    "Siobhan,O'Brien,siobhan@wizard.example,VP Sales,AT&T,webinar\n" +
    'Renée,Ng,not-an-email,CTO,Table.io,webinar\n' +
    'Zoë,van der Berg,wei@wizard.example,Head of Growth,Ben & Jerry\'s,webinar\n';
  await page.setInputFiles('#import-file', { name: 'wizard.csv', mimeType: 'text/csv', buffer: Buffer.from(csv, 'latin1') });
  await page.click('#import-upload button[type=submit]');
  await page.waitForSelector('#import-review:not([hidden]), #import-error:not([hidden])');
  assert.equal(await page.isHidden('#import-error'), true, await page.textContent('#import-error'));
  assert.ok((await page.textContent('#import-summary')).includes('3 rows'));
  assert.equal(await page.inputValue('#import-encoding'), 'windows-1252');
  assert.ok((await page.textContent('#import-preview tbody')).includes('Zoë'));
  await page.selectOption('#import-encoding', 'UTF-8');
  await page.waitForFunction(() => document.querySelector('#import-preview tbody').textContent.includes('not valid UTF-8'));
  assert.ok((await page.textContent('#import-encoding')).includes('UTF-8 (in use)'));
  await page.selectOption('#import-encoding', 'windows-1252');
  await page.waitForFunction(() => document.querySelector('#import-preview tbody').textContent.includes('Zoë'));
  assert.equal(await page.inputValue('#import-mapping select[name=column_2]'), 'email');
  assert.ok((await page.textContent('#import-preview tbody')).includes("O'Brien"));
  await page.selectOption('#import-mapping select[name=column_5]', '');
  await page.screenshot({ path: join(SHOTS, 'import-review.png'), fullPage: true });
  await page.click('#import-start button[type=submit]');
  await page.waitForSelector('#import-report:not([hidden])', { timeout: 30_000 });
  const status = await page.textContent('#import-status');
  assert.ok(status.startsWith('done') && status.includes('2 created') && status.includes('1 rejected'), status);
  await page.screenshot({ path: join(SHOTS, 'import-done.png'), fullPage: true });
  const report = await page.request.get(BASE + await page.getAttribute('#import-report-link', 'href'));
  assert.equal(report.status(), 200);
  const lines = (await report.text()).trim().split(/\r?\n/);
  assert.equal(lines[0], 'line,column,severity,reason');
  assert.ok(lines.slice(1).some((l) => l.startsWith('3,Email,reject,')), lines.join('\n'));
  const imported = await page.request.get(`${BASE}/api/v1/leads?q=siobhan`, { headers: { Authorization: `Bearer ${access}` } });
  const found = (await imported.json()).items;
  assert.equal(found.length, 1);
  assert.equal(found[0].source, null, 'the column left out was not imported');

  assert.deepEqual(problems, [], 'no console errors or warnings');
  await context.close();
});
