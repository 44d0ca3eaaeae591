#!/usr/bin/env node
// The web UI against a cluster with `rest.auth.token`: the page asks for the token once,
// sends it as a bearer token on every API call, and shows the cluster; a wrong token shows
// the server's 401 message in the error banner.
//
// Environment: BASE_URL, TOKEN (the configured token), CHROMIUM (default /usr/bin/chromium).

const BASE = (process.env.BASE_URL || '').replace(/\/*$/, '/');
const TOKEN = process.env.TOKEN || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!BASE || !TOKEN) {
  console.error('FAIL: BASE_URL and TOKEN are required');
  process.exit(2);
}
const watchdog = setTimeout(() => {
  console.error('FAIL: the auth test took longer than 60 s');
  process.exit(1);
}, 60_000);

const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = null;
try {
  // The right token: the overview shows the API's numbers.
  const overview = await (await fetch(new URL('overview', BASE), { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  const page = await (await browser.newContext()).newPage();
  let prompts = 0;
  // A dialog may still be answered while the browser closes: that is not a failure.
  page.on('dialog', (d) => {
    prompts += 1;
    d.accept(TOKEN).catch(() => {});
  });
  await page.goto(new URL('#/overview', BASE).href);
  await page.waitForFunction(
    (n) => document.querySelector('[data-testid="overview-taskmanagers"]')?.textContent === String(n),
    overview.taskmanagers,
    { timeout: 15_000 },
  );
  if (prompts < 1) throw new Error('the page never asked for the token');
  // Navigating on does not ask again.
  await page.goto(new URL('#/taskmanagers', BASE).href);
  await page.waitForTimeout(1500);
  if (prompts > 2) throw new Error(`the page asked for the token ${prompts} times`);

  // A wrong token: the banner shows the server's 401 message.
  const wrong = await (await browser.newContext()).newPage();
  wrong.on('dialog', (d) => d.accept('not-the-token').catch(() => {}));
  await wrong.goto(new URL('#/overview', BASE).href);
  await wrong.waitForFunction(
    () => /bearer token/i.test(document.body.innerText),
    null,
    { timeout: 15_000 },
  );
  console.log('auth UI test: OK');
} catch (err) {
  failed = err;
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
if (failed) {
  console.error(`FAIL: ${failed.message}`);
  process.exit(1);
}
