// Drives Debian's Chromium (never a downloaded browser) through a noVNC
// page served by wsbridge, and prints what it saw as one line of JSON for
// the Go test to judge. It takes one argument, a JSON object:
//
//   url           the page, with autoconnect and the WebSocket path
//   status        CSS selector of the element that says "Connected"
//   credentials   {username, password} for Basic auth, or absent
//   probes        [{x, y}] framebuffer points whose colours to report
//   before        {x, y, rgb} a point to wait for before typing
//   type          text to type into the remote window
//   after         {x, y, rgb} a point to wait for after typing
//   artifacts     directory for a screenshot and the console on failure
//
// Colours match within a tolerance of 24 per channel: the VNC encoding
// and the canvas may round.
import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const result = { console: [], csp: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
    '--disable-dev-shm-usage'],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 900 },
  httpCredentials: args.credentials,
});
const page = await context.newPage();
page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`));
await page.addInitScript(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});

function close(a, b) {
  return a.every((v, i) => Math.abs(v - b[i]) <= 24);
}

async function pixel(x, y) {
  return page.evaluate(([x, y]) => {
    const c = document.querySelector('canvas');
    const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
    return [d[0], d[1], d[2]];
  }, [x, y]);
}

async function waitPixel(want, what) {
  const deadline = Date.now() + 15000;
  let got;
  for (;;) {
    got = await pixel(want.x, want.y);
    if (close(got, want.rgb)) return got;
    if (Date.now() > deadline) {
      throw new Error(`${what}: pixel (${want.x},${want.y}) is ${got}, want ${want.rgb}`);
    }
    await page.waitForTimeout(100);
  }
}

let failed = null;
try {
  const resp = await page.goto(args.url);
  result.pageStatus = resp.status();
  result.pageCSP = resp.headers()['content-security-policy'] || '';
  await page.waitForFunction(
    (sel) => (document.querySelector(sel)?.textContent || '').includes('Connected'),
    args.status, { timeout: 20000 });
  result.status = await page.textContent(args.status);
  const canvas = page.locator('canvas').first();
  result.canvas = await canvas.evaluate((c) => [c.width, c.height]);
  await waitPixel(args.before, 'before typing');
  result.probes = [];
  for (const p of args.probes) result.probes.push(await pixel(p.x, p.y));
  const box = await canvas.boundingBox();
  await page.mouse.click(box.x + args.before.x * box.width / result.canvas[0],
    box.y + args.before.y * box.height / result.canvas[1]);
  await page.keyboard.type(args.type, { delay: 30 });
  result.after = await waitPixel(args.after, 'after typing');
} catch (e) {
  failed = e;
  result.error = String(e.message || e);
}
result.csp = await page.evaluate(() => window.__csp || []).catch(() => ['(page gone)']);
if (failed && args.artifacts) {
  mkdirSync(args.artifacts, { recursive: true });
  await page.screenshot({ path: join(args.artifacts, 'page.png'), fullPage: true }).catch(() => {});
  writeFileSync(join(args.artifacts, 'console.txt'), result.console.join('\n') + '\n');
}
await browser.close();
console.log(JSON.stringify(result));
