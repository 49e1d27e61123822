// Browser tests for the LeadGen landing page and 404 page.
//
// Run from the repo root:
//   LEADGEN_BASE_URL=https://127.0.0.1:PORT node --test e2e/landing.test.mjs
// Normally driven by the Rust integration test `it::e2e`, which starts the
// server on a free port and sets LEADGEN_BASE_URL. See e2e/README.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const RAW_BASE_URL = process.env.LEADGEN_BASE_URL;
if (!RAW_BASE_URL || !RAW_BASE_URL.trim()) {
  // Never skip: a missing server URL is a broken test setup, not a pass.
  throw new Error(
    'LEADGEN_BASE_URL is not set. Start the LeadGen server and run e.g. ' +
      'LEADGEN_BASE_URL=https://127.0.0.1:34567 node --test e2e/landing.test.mjs',
  );
}
const BASE_URL = RAW_BASE_URL.trim().replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.LEADGEN_SCREENSHOT_DIR
  ? path.resolve(process.env.LEADGEN_SCREENSHOT_DIR)
  : path.join(HERE, 'screenshots');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const TEST_TIMEOUT_MS = 60_000;
const NAV_TIMEOUT_MS = 30_000;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** Opens a fresh context + page and records every problem the page reports. */
async function openPage() {
  // The dev server uses a self-signed certificate.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(NAV_TIMEOUT_MS);
  const problems = { console: [], pageErrors: [], failedRequests: [], badResponses: [] };
  page.on('console', (msg) => {
    const type = msg.type();
    if (type === 'error' || type === 'warning') {
      const loc = msg.location();
      const where = loc && loc.url ? ` (at ${loc.url}:${loc.lineNumber}:${loc.columnNumber})` : '';
      problems.console.push(`[console.${type}] ${msg.text()}${where}`);
    }
  });
  page.on('pageerror', (err) => {
    problems.pageErrors.push(`[pageerror] ${err && err.stack ? err.stack : String(err)}`);
  });
  page.on('requestfailed', (req) => {
    const failure = req.failure();
    problems.failedRequests.push(
      `[requestfailed] ${req.method()} ${req.url()}: ${failure ? failure.errorText : 'unknown error'}`,
    );
  });
  page.on('response', (res) => {
    // Sub-resources (stylesheets, scripts, images, favicon...) must all load.
    const req = res.request();
    const isMainDocument = req.isNavigationRequest() && req.frame() === page.mainFrame();
    if (res.status() >= 400 && !isMainDocument) {
      problems.badResponses.push(`[http ${res.status()}] ${req.method()} ${res.url()}`);
    }
  });
  return { context, page, problems };
}

function formatProblems(list) {
  return list.length ? '\n  ' + list.join('\n  ') : ' (none)';
}

/** Parses a CSP header value into a Map of directive name -> array of sources. */
function parseCsp(value) {
  const directives = new Map();
  for (const part of value.split(';')) {
    const tokens = part.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) continue;
    const name = tokens[0].toLowerCase();
    // Per CSP spec, the first occurrence of a directive wins.
    if (!directives.has(name)) directives.set(name, tokens.slice(1));
  }
  return directives;
}

test('landing page loads cleanly with strict security headers', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { context, page, problems } = await openPage();
  try {
    const url = BASE_URL + '/';
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response, `no response for ${url}`);
    assert.equal(response.status(), 200, `GET ${url} returned ${response.status()}`);

    const headers = response.headers(); // lower-cased names

    // --- Content-Security-Policy ---
    const csp = headers['content-security-policy'];
    assert.ok(csp, `missing content-security-policy header on ${url}; headers: ${JSON.stringify(headers)}`);
    const directives = parseCsp(csp);
    const scriptDirective = directives.has('script-src') ? 'script-src' : 'default-src';
    const scriptSources = directives.get(scriptDirective);
    assert.ok(scriptSources, `CSP has neither script-src nor default-src: ${csp}`);
    for (const forbidden of ["'unsafe-inline'", "'unsafe-eval'"]) {
      assert.ok(
        !scriptSources.map((s) => s.toLowerCase()).includes(forbidden),
        `CSP ${scriptDirective} must not contain ${forbidden}: ${csp}`,
      );
    }
    const frameAncestors = directives.get('frame-ancestors');
    assert.ok(
      frameAncestors && frameAncestors.length === 1 && frameAncestors[0].toLowerCase() === "'none'",
      `CSP must contain frame-ancestors 'none': ${csp}`,
    );

    // --- Strict-Transport-Security ---
    const hsts = headers['strict-transport-security'];
    assert.ok(hsts, `missing strict-transport-security header on ${url}`);
    const maxAge = /(?:^|;)\s*max-age\s*=\s*"?(\d+)"?/i.exec(hsts);
    assert.ok(maxAge, `strict-transport-security has no max-age: ${hsts}`);
    assert.ok(Number(maxAge[1]) >= 31536000, `strict-transport-security max-age must be >= 31536000: ${hsts}`);
    assert.ok(/(?:^|;)\s*includesubdomains\s*(?:;|$)/i.test(hsts), `strict-transport-security lacks includeSubDomains: ${hsts}`);

    // --- Content ---
    const h1Texts = await page.locator('h1').allTextContents();
    assert.ok(h1Texts.length >= 1, 'page has no <h1>');
    assert.ok(
      h1Texts.some((t) => t.includes('LeadGen')),
      `no <h1> contains "LeadGen"; found: ${JSON.stringify(h1Texts)}`,
    );

    // --- Stylesheet applied ---
    const styleInfo = await page.evaluate(() => {
      const links = [...document.querySelectorAll('link[rel~="stylesheet" i]')].map((l) => l.href);
      const sheets = [...document.styleSheets].map((s) => {
        let rules = -1;
        try {
          rules = s.cssRules.length;
        } catch (e) {
          rules = -1; // cross-origin or blocked
        }
        return { href: s.href, rules };
      });
      return { links, sheets, bodyFont: getComputedStyle(document.body).fontFamily };
    });
    const cssPath = /\/static\/app\.[0-9a-f]{8,}\.css$/;
    const appLink = styleInfo.links.find((href) => cssPath.test(new URL(href).pathname));
    assert.ok(
      appLink,
      `no <link rel=stylesheet> with href like /static/app.<hex hash>.css; found: ${JSON.stringify(styleInfo.links)}`,
    );
    assert.ok(styleInfo.sheets.length >= 1, `document.styleSheets is empty: ${JSON.stringify(styleInfo)}`);
    const appSheet = styleInfo.sheets.find((s) => s.href === appLink);
    assert.ok(appSheet, `stylesheet ${appLink} is not in document.styleSheets (blocked?): ${JSON.stringify(styleInfo)}`);
    assert.ok(appSheet.rules > 0, `stylesheet ${appLink} has no CSS rules: ${JSON.stringify(styleInfo)}`);

    // --- Nothing went wrong while loading ---
    await page.waitForLoadState('networkidle');
    const all = [...problems.console, ...problems.pageErrors, ...problems.failedRequests, ...problems.badResponses];
    assert.equal(
      all.length,
      0,
      `landing page reported problems (console errors/warnings incl. CSP violations, page errors, failed requests, HTTP errors):${formatProblems(all)}`,
    );

    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'landing.png'), fullPage: true });
  } finally {
    await context.close();
  }
});

test('unknown path shows a 404 page with the request id', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { context, page, problems } = await openPage();
  try {
    const url = BASE_URL + '/this-page-does-not-exist';
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response, `no response for ${url}`);
    assert.equal(response.status(), 404, `GET ${url} returned ${response.status()}, expected 404`);

    const requestId = response.headers()['x-request-id'];
    assert.ok(requestId && requestId.trim(), `404 response has no x-request-id header`);

    const bodyText = await page.locator('body').innerText();
    assert.ok(/404|not found/i.test(bodyText), `404 page does not say "404" or "not found"; body text: ${JSON.stringify(bodyText)}`);
    assert.ok(
      bodyText.includes(requestId.trim()),
      `404 page does not show the request id ${JSON.stringify(requestId)}; body text: ${JSON.stringify(bodyText)}`,
    );

    await page.waitForLoadState('networkidle');
    // Chromium logs the main document's own 404 as a console error
    // ("Failed to load resource: ... 404"); that one is expected here.
    const consoleErrors = problems.console.filter(
      (m) => !(m.startsWith('[console.error] Failed to load resource') && m.includes(`(at ${url}:`)),
    );
    const all = [...consoleErrors, ...problems.pageErrors, ...problems.failedRequests];
    assert.equal(all.length, 0, `404 page reported problems:${formatProblems(all)}`);
  } finally {
    await context.close();
  }
});

// Every public page, and the signed-out account pages, load nothing from another origin: no
// script, stylesheet, font, image or frame (Security page: no third-party tracking scripts).
test('public pages load only same-origin resources', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const origin = new URL(BASE_URL).origin;
  const pages = ['/', '/security', '/security/disclosure', '/privacy', '/terms', '/login', '/signup', '/.well-known/security.txt'];
  for (const p of pages) {
    const { context, page, problems } = await openPage();
    const requests = [];
    page.on('request', (req) => requests.push(req.url()));
    try {
      const url = BASE_URL + p;
      const response = await page.goto(url, { waitUntil: 'load' });
      assert.ok(response, `no response for ${url}`);
      assert.equal(response.status(), 200, `GET ${url} returned ${response.status()}`);
      await page.waitForLoadState('networkidle');
      const foreign = requests.filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);
      assert.deepEqual(foreign, [], `${p} requested resources from other origins`);
      const dom = await page.evaluate(() => ({
        scripts: [...document.querySelectorAll('script[src]')].map((s) => s.src),
        inline: [...document.querySelectorAll('script:not([src])')].length,
        links: [...document.querySelectorAll('link[href]')].map((l) => l.href),
        media: [...document.querySelectorAll('img[src], iframe[src], source[src], video[src], audio[src]')].map((e) => e.src),
      }));
      for (const src of [...dom.scripts, ...dom.links, ...dom.media]) {
        assert.equal(new URL(src).origin, origin, `${p} references ${src}`);
      }
      assert.equal(dom.inline, 0, `${p} has inline script`);
      const all = [...problems.console, ...problems.pageErrors, ...problems.failedRequests, ...problems.badResponses];
      assert.equal(all.length, 0, `${p} reported problems:${formatProblems(all)}`);
    } finally {
      await context.close();
    }
  }
});
