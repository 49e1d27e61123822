// A security researcher reports a vulnerability in Chromium: the disclosure page's form with a
// payload in every text field and a screenshot attached, the tracking id on the answer page, the
// acknowledgement mail in the mailbox, and the status link showing the report as text.
//
// Driven by the Rust integration test `it::e2e::vulnerability_report_in_chromium`, which sets
// LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.LEADGEN_BASE_URL || '').replace(/\/+$/, '');
const MAILBOX = process.env.LEADGEN_MAILBOX_DIR;
if (!BASE || !MAILBOX) {
  throw new Error('LEADGEN_BASE_URL and LEADGEN_MAILBOX_DIR must be set (run through it::e2e)');
}
const XSS = '<img src=x onerror=alert(1)>';

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

function mails() {
  return readdirSync(MAILBOX)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(path.join(MAILBOX, f), 'utf8')));
}

test('a report through the form gets its id, its mail and a status page', { timeout: 90_000 }, async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  try {
    await page.goto(`${BASE}/security/disclosure`);
    await page.fill('input[name=title]', `Stored XSS ${XSS}`);
    await page.fill('input[name=email]', 'chromium.researcher@example.org');
    await page.fill('textarea[name=endpoints]', "POST /api/v1/leads\nGET /leads?q=' OR 1=1--");
    await page.fill('textarea[name=steps]', `1. Save a note ${XSS}\n2. Open the lead.`);
    await page.fill('textarea[name=impact]', 'Script runs in every member session.');
    await page.fill('input[name=cvss]', 'CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:N');
    await page.setInputFiles('input[name=attachments]', {
      name: 'proof.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('request and response of the proof\n'),
    });
    // The form's signed stamp needs a few seconds of filling, as a person takes.
    await page.waitForTimeout(3500);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    const id = await page.getAttribute('[data-tracking-id]', 'data-tracking-id');
    assert.match(id, /^LG-VDP-\d{4}-\d{4}$/);
    const link = await page.getAttribute('[data-status-link]', 'href');
    assert.ok(link.startsWith(`${BASE}/security/reports/`), link);

    let ack;
    for (let i = 0; i < 50 && !ack; i++) {
      ack = mails().find((m) => m.subject.includes(id));
      if (!ack) await page.waitForTimeout(100);
    }
    assert.ok(ack, `an acknowledgement mail naming ${id}`);
    assert.equal(ack.to, 'chromium.researcher@example.org');
    assert.ok(ack.text.includes(link), 'the mail carries the status link');

    await page.click('[data-status-link]');
    await page.waitForSelector('[data-status]');
    assert.equal((await page.textContent('[data-status]')).trim(), 'received');
    assert.ok((await page.textContent('.lead')).includes(XSS), 'the title is shown as text');
    assert.equal(await page.locator('img[src=x]').count(), 0, 'no markup from the report');
    assert.deepEqual(dialogs, [], 'no script from the report ran');
  } finally {
    await context.close();
  }
});
