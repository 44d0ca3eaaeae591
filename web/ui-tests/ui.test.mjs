#!/usr/bin/env node
// Browser test of riffle's web UI in headless Debian Chromium (playwright-core, no bundled
// browser). A plain script: exit code 0 when every check passes, 1 with a message naming the
// first failed check.
//
// Environment:
//   BASE_URL        where the UI and the REST API are served, e.g. http://127.0.0.1:8081/
//   JOB_ID          a job that failed and restarted at least 12 times with errors whose
//                   messages contain "injected failure #<k>" (k = 1, 2, ... in order)
//   SCREENSHOT_DIR  where screenshots go (default: ./screenshots next to this script)
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   UI_TEST_TIMEOUT_MS  hard limit for the whole run (default 120000)
//
// Expectations are computed from the live API (fetched by this script), and compared so that
// a running job may change between two fetches (sets, before/after bounds).
//
// Besides reading pages, it submits one `wordcount` job, and, when /programs offers
// `failover-demo`, submits one of those to exercise the job page's actions on it (never on
// JOB_ID): a savepoint to state.savepoints.dir, a rejected relative target directory, cancel.

import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const WAIT_MS = 10_000;
const MAX_SHOWN = 1024 * 1024; // the UI shows files above this from their last MiB

const env = (name, fallback) => {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) {
      console.error(`FAIL: environment variable ${name} is required`);
      process.exit(2);
    }
    return fallback;
  }
  return value;
};

const BASE = new URL(env('BASE_URL').replace(/\/*$/, '/'));
const JOB_ID = env('JOB_ID');
const SHOTS = env('SCREENSHOT_DIR', join(HERE, 'screenshots'));
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TOTAL_MS = Number(env('UI_TEST_TIMEOUT_MS', '120000'));

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  console.error(`FAIL: cannot load playwright-core (${err.message}); run "npm ci" in ${HERE}`);
  process.exit(2);
}
try {
  await access(CHROMIUM);
} catch (_) {
  console.error(`FAIL: no browser at ${CHROMIUM}; install Debian's (apt-get install -y chromium) or set CHROMIUM`);
  process.exit(2);
}

const watchdog = setTimeout(async () => {
  console.error(`FAIL: the whole test took longer than ${TOTAL_MS} ms`);
  if (actionsJob) await apiSend('PATCH', `jobs/${actionsJob}?mode=cancel`, {}).catch(() => {});
  process.exit(1);
}, TOTAL_MS);

// ------------------------------------------------------------------ helpers

class CheckError extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckError(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET from the REST API: JSON (default), 'text' or 'bytes'; {status} when allowError. */
async function api(path, { as = 'json', allowError = false } = {}) {
  const url = new URL(path, BASE);
  let response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });
  } catch (err) {
    throw new CheckError(`API GET ${url}: ${err.message}${err.cause ? ` (${err.cause.message || err.cause})` : ''}`);
  }
  if (!response.ok) {
    const body = await response.text();
    if (allowError) return { status: response.status, body };
    throw new CheckError(`API GET ${path} answered ${response.status}: ${body.slice(0, 300)}`);
  }
  if (as === 'bytes') return Buffer.from(await response.arrayBuffer());
  if (as === 'text') return response.text();
  return response.json();
}

/** POST/PATCH a JSON body to the REST API; {status, body} (body parsed when JSON). */
async function apiSend(method, path, body) {
  const url = new URL(path, BASE);
  const response = await fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body ?? {}),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const textBody = await response.text();
  let parsed = textBody;
  try {
    parsed = JSON.parse(textBody);
  } catch (_) {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed };
}

/** Polls fn (async, returns a truthy value when done) until it succeeds or times out. */
async function waitFor(description, fn, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new CheckError(`timed out after ${timeout} ms waiting for ${description} (last: ${detail})`);
    }
    await sleep(150);
  }
}

const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));
const fmtSet = (s) => JSON.stringify([...s].sort());

/** mid equals before or after, or lies between them on an append-only file. */
function between(before, mid, after) {
  const eq = (x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)) === 0;
  const prefix = (p, x) => Buffer.from(x).subarray(0, Buffer.from(p).length).equals(Buffer.from(p));
  return eq(mid, before) || eq(mid, after) || (prefix(before, mid) && prefix(mid, after));
}

function injectedK(text) {
  const m = /injected failure #(\d+)/.exec(text || '');
  return m ? Number(m[1]) : null;
}

// ------------------------------------------------------------------ browser

let browser;
let page;
let shotIndex = 0;
const pageErrors = [];
/** Dialogs (confirm, alert) the page opened: {type, message, accepted}. */
const dialogs = [];
/** When set, the next dialog whose message matches is accepted; every other one is dismissed. */
let acceptDialog = null;
/** The job the actions step started; cancelled through the API if the test fails midway. */
let actionsJob = null;

async function shot(name) {
  shotIndex += 1;
  const file = join(SHOTS, `${String(shotIndex).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function go(route) {
  await page.goto(new URL(`#/${route}`, BASE).href);
  await waitFor(`route #/${route}`, () => page.evaluate((r) => location.hash === `#/${r}`, route));
}

const count = (selector) => page.locator(selector).count();
const texts = (selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
const attrs = (selector, name) => page.$$eval(selector, (els, n) => els.map((e) => e.getAttribute(n)), name);
const text = (selector) => page.$eval(selector, (e) => e.textContent).catch(() => null);

async function assertClean(where) {
  check(pageErrors.length === 0, `${where}: JavaScript error in the page: ${pageErrors.join(' | ')}`);
  const banner = await page.$eval('#error-banner', (e) => (e.hidden ? null : e.textContent)).catch(() => null);
  check(banner === null, `${where}: the error banner is shown: ${banner}`);
  const raw = await page.evaluate(() => (/\[object \w+\]|undefined|NaN/.exec(document.getElementById('content').innerText) || [null])[0]);
  check(raw === null, `${where}: the page shows "${raw}" (a value rendered raw)`);
}

let stepName = '';
async function step(name, fn) {
  stepName = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

// ------------------------------------------------------------------ checks

async function checkOverview(job) {
  await go('overview');
  await waitFor('the TaskManager count on the overview', async () =>
    (await text('[data-testid="overview-taskmanagers"]')) === String((await api('overview')).taskmanagers));
  for (const key of ['slots-total', 'jobs-running', 'jobs-finished']) {
    const shown = await text(`[data-testid="overview-${key}"]`);
    check(/^\d+$/.test(shown || ''), `overview ${key} shows "${shown}", not a number`);
  }
  const row = `[data-testid$="-jobs"] tr[data-job-id="${JOB_ID}"]`;
  await waitFor(`job ${JOB_ID} in the running or completed jobs table`, () => count(row));
  const name = await text(`${row} .job-name`);
  check(name === job.name, `overview row of ${JOB_ID} shows name "${name}", API says "${job.name}"`);
  await assertClean('overview');
  await shot('overview');
}

async function checkJobsList() {
  const before = new Set((await api('jobs/overview')).jobs.map((j) => j.jid));
  await go('jobs');
  await waitFor(`job ${JOB_ID} in the jobs list`, () => count(`tr[data-job-id="${JOB_ID}"]`));
  await waitFor('the jobs list to match jobs/overview', async () => {
    const after = new Set((await api('jobs/overview')).jobs.map((j) => j.jid));
    const shown = new Set(await attrs('tr[data-testid="job-row"]', 'data-job-id'));
    const stable = [...before].filter((id) => after.has(id));
    return [...shown].every((id) => before.has(id) || after.has(id)) && stable.every((id) => shown.has(id));
  });
  await assertClean('jobs list');
  await shot('jobs');
}

async function checkJobGraph(job) {
  await go(`jobs/${JOB_ID}`);
  await waitFor('the job name in the header', async () => (await text('[data-testid="job-name"]')) === job.name);
  const shownId = await text('[data-testid="job-id"]');
  check(shownId === JOB_ID, `job page shows id "${shownId}", expected ${JOB_ID}`);

  const vertexIds = new Set(job.vertices.map((v) => v.id));
  await waitFor(`${vertexIds.size} vertex boxes in the job graph`, async () =>
    (await count('svg[data-testid="job-graph"] [data-testid="graph-vertex"]')) === vertexIds.size);
  const boxes = new Set(await attrs('[data-testid="graph-vertex"]', 'data-vertex-id'));
  check(sameSet(boxes, vertexIds), `graph vertices ${fmtSet(boxes)} differ from the API's ${fmtSet(vertexIds)}`);

  const plan = await api(`jobs/${JOB_ID}/plan`);
  const expectedEdges = [];
  for (const node of plan.plan.nodes) {
    for (const input of node.inputs || []) {
      if (vertexIds.has(node.id) && vertexIds.has(input.id)) expectedEdges.push(`${input.id}->${node.id}`);
    }
  }
  const edges = await page.$$eval('[data-testid="graph-edge"]', (els) => els.map((e) => `${e.dataset.from}->${e.dataset.to}`));
  check(JSON.stringify(edges.sort()) === JSON.stringify(expectedEdges.sort()),
    `graph edges ${JSON.stringify(edges)} differ from the plan's ${JSON.stringify(expectedEdges)}`);

  const names = await texts('[data-testid="graph-vertex"] .vertex-name');
  check(names.every((n) => n.length > 0), 'a vertex box has no name');
  const levels = await page.$$eval('[data-testid="graph-vertex"]', (els) =>
    els.map((e) => (e.getAttribute('class').match(/bp-(ok|low|high)/) || [null])[0]));
  check(levels.every(Boolean), `a vertex box has no backpressure colour: ${JSON.stringify(levels)}`);

  const rows = new Set(await attrs('[data-testid="vertex-row"]', 'data-vertex-id'));
  check(sameSet(rows, vertexIds), `vertex table rows ${fmtSet(rows)} differ from the API's ${fmtSet(vertexIds)}`);
  // The vertex table fits the 1400 px page: no horizontal scrolling.
  const overflow = await page.$eval('[data-testid="vertex-table"]', (t) => {
    const card = t.closest('.card');
    return { table: t.scrollWidth, card: card.clientWidth };
  });
  check(overflow.table <= overflow.card, `the vertex table is ${overflow.table} px wide in a ${overflow.card} px card`);
  await assertClean('job graph');
  await shot('job-graph');
}

async function checkVertex(job) {
  const v = job.vertices[job.vertices.length - 1];
  await go(`jobs/${JOB_ID}`);
  await waitFor('vertex links', () => count(`[data-testid="vertex-row"][data-vertex-id="${v.id}"] [data-testid="vertex-link"]`));
  await page.click(`[data-testid="vertex-row"][data-vertex-id="${v.id}"] [data-testid="vertex-link"]`);
  await waitFor('the vertex page', () => page.evaluate((r) => location.hash === r, `#/jobs/${JOB_ID}/vertices/${v.id}`));
  await waitFor('the vertex name', async () => (await text('[data-testid="vertex-name"]')) === v.name);
  const api0 = await api(`jobs/${JOB_ID}/vertices/${v.id}`);
  await waitFor(`${v.parallelism} subtask rows`, async () => (await count('[data-testid="subtask-row"]')) === v.parallelism);
  const endpoints = await texts('[data-testid="subtask-endpoint"]');
  api0.subtasks.forEach((s, i) => check(endpoints[i].startsWith(s.endpoint) && endpoints[i].includes(s['taskmanager-id']),
    `subtask ${i} shows "${endpoints[i]}", the API says ${s.endpoint} / ${s['taskmanager-id']}`));
  await waitFor(`${v.parallelism} watermark rows`, async () => (await count('[data-testid="watermark-row"]')) === v.parallelism);
  const wm = await api(`jobs/${JOB_ID}/vertices/${v.id}/watermarks`);
  const shownValues = await attrs('[data-testid="watermark-value"]', 'data-value');
  check(shownValues.length === wm.length, `watermarks shown ${shownValues.length}, API has ${wm.length}`);
  // Pick a metric: its value shows, and a chart grows one bar per refresh.
  await waitFor('the metric picker', async () => (await count('[data-testid="metric-picker"] option')) > 1);
  await page.selectOption('[data-testid="metric-picker"]', '0.numRecordsIn');
  await waitFor('the metric value', async () => /^\d+$/.test((await text('[data-testid="metric-value"]')) || ''));
  await waitFor('two samples in the metric chart', async () =>
    (await count('[data-testid="metric-chart"] [data-testid="chart-bar"]')) >= 2, 15_000);
  const shown = Number(await text('[data-testid="metric-value"]'));
  const after = Number((await api(`jobs/${JOB_ID}/vertices/${v.id}/metrics?get=0.numRecordsIn`))[0].value);
  check(shown <= after, `metric value ${shown} is above the API's later ${after}`);
  const wide = await page.$eval('[data-testid="subtask-table"]', (t) => t.scrollWidth - t.closest('.card').clientWidth);
  check(wide <= 0, `the subtask table is ${wide} px wider than its card`);
  await assertClean('vertex page');
  await shot('vertex');
}

async function checkCheckpointDetail() {
  const stats = await api(`jobs/${JOB_ID}/checkpoints`, { allowError: true });
  const done = stats.history && stats.history.find((c) => c.status === 'COMPLETED');
  if (!done) {
    console.log('note no completed checkpoint in the history: checkpoint page not tested');
    return;
  }
  await go(`jobs/${JOB_ID}/checkpoints`);
  const linkSel = `[data-testid="checkpoint-row"][data-checkpoint-id="${done.id}"] [data-testid="checkpoint-link"]`;
  await waitFor(`the link of checkpoint ${done.id}`, () => count(linkSel));
  await page.click(linkSel);
  await waitFor('the checkpoint page', () => page.evaluate((r) => location.hash === r, `#/jobs/${JOB_ID}/checkpoints/${done.id}`));
  const detail = await api(`jobs/${JOB_ID}/checkpoints/details/${done.id}`);
  const vids = Object.keys(detail.tasks);
  await waitFor(`${vids.length} operator sections`, async () => (await count('[data-testid="checkpoint-operator"]')) === vids.length);
  for (const vid of vids) {
    const rows = await count(`[data-testid="checkpoint-operator"][data-vertex-id="${vid}"] [data-testid="checkpoint-subtask-row"]`);
    check(rows === detail.tasks[vid].num_subtasks, `operator ${vid} shows ${rows} subtasks, the API says ${detail.tasks[vid].num_subtasks}`);
  }
  await assertClean('checkpoint page');
  await shot('checkpoint-detail');
}

async function checkCheckpoints() {
  const before = await api(`jobs/${JOB_ID}/checkpoints`, { allowError: true });
  await go(`jobs/${JOB_ID}/checkpoints`);
  if (before.status === 404) {
    await waitFor('the "checkpoints not available" message', () => count('[data-testid="checkpoints-disabled"]'));
  } else {
    await waitFor('the checkpoint counts', () => count('[data-testid="checkpoints-total"]'));
    const total = Number(await text('[data-testid="checkpoints-total"]'));
    check(total >= before.counts.total, `checkpoint total shows ${total}, API said ${before.counts.total} before`);
    if (before.history.length > 0) {
      await waitFor('checkpoint history rows', () => count('[data-testid="checkpoint-row"]'));
      const { ids, bars } = await page.evaluate(() => ({
        ids: [...document.querySelectorAll('[data-testid="checkpoint-row"]')].map((r) => Number(r.dataset.checkpointId)),
        bars: document.querySelectorAll('[data-testid="checkpoint-chart"] [data-testid="chart-bar"]').length,
      }));
      const newestBefore = Math.max(...before.history.map((c) => c.id));
      check(Math.max(...ids) >= newestBefore, `newest checkpoint shown is ${Math.max(...ids)}, API had ${newestBefore}`);
      check(bars === 2 * ids.length, `the chart has ${bars} bars for ${ids.length} checkpoints (expected duration + size each)`);
    } else {
      await waitFor('the empty checkpoint history', () => count('[data-testid="checkpoint-history"]'));
    }
  }
  await assertClean('checkpoints');
  await shot('checkpoints');
}

/** The k of "injected failure #k" of each top-level entry on the shown exceptions page. */
function shownFailures() {
  return page.$$eval('[data-testid="exception-entry"]', (entries) => entries.map((entry) => {
    const own = [
      entry.querySelector(':scope > .exception-head')?.textContent,
      entry.querySelector(':scope > [data-testid="exception-message"]')?.textContent,
      entry.querySelector(':scope > details.stacktrace > pre')?.textContent,
    ].join('\n');
    const m = /injected failure #(\d+)/.exec(own);
    return m ? Number(m[1]) : null;
  }));
}

function maxInjected(page0) {
  const ks = page0.exceptionHistory.entries
    .map((e) => injectedK(`${e.exceptionName}\n${e.stacktrace}`))
    .filter((k) => k !== null);
  return ks.length ? Math.max(...ks) : null;
}

async function checkExceptions() {
  const before = await api(`jobs/${JOB_ID}/exceptions?page=0&size=5`);
  check(before.total >= 12, `API: job ${JOB_ID} has ${before.total} failures, the test needs at least 12`);
  const maxBefore = maxInjected(before);
  check(maxBefore !== null, 'API: no "injected failure #k" on the first page of the exception history');

  await go(`jobs/${JOB_ID}/exceptions`);
  await waitFor('page 1 of the exception history', async () =>
    /^Page 1 of \d+$/.test((await text('[data-testid="exceptions-page-info"]')) || '')
    && (await count('[data-testid="exception-entry"]')) > 0);
  const page1 = await shownFailures();
  const after = await api(`jobs/${JOB_ID}/exceptions?page=0&size=5`);
  const maxAfter = maxInjected(after);
  const ks1 = page1.filter((k) => k !== null);
  check(page1.length === 5, `page 1 shows ${page1.length} entries, expected 5`);
  check(ks1.length > 0, 'page 1 shows no "injected failure #k"');
  const max1 = Math.max(...ks1);
  check(max1 >= maxBefore && max1 <= maxAfter,
    `page 1's newest failure is #${max1}, the API's was #${maxBefore} (before) / #${maxAfter} (after)`);
  check(ks1.every((k, i) => i === 0 || k < ks1[i - 1]), `page 1 is not newest first: ${JSON.stringify(ks1)}`);
  const info = await text('[data-testid="exceptions-page-info"]');
  const pages = Number(/of (\d+)/.exec(info)[1]);
  const lo = Math.ceil(before.total / 5);
  const hi = Math.ceil(after.total / 5);
  check(pages >= lo && pages <= hi, `"${info}" but the API has ${before.total}..${after.total} failures (5 per page)`);
  check(await count('[data-testid="exception-entry"] [data-testid="root-cause-badge"]') > 0, 'page 1 has no root-cause badge');

  // a stack trace expands
  await page.locator('[data-testid="exception-entry"] > details.stacktrace > summary').first().click();
  await waitFor('an expanded stack trace', () =>
    page.locator('[data-testid="exception-entry"] > details.stacktrace > pre').first().isVisible());
  await assertClean('exceptions page 1');
  await shot('exceptions-page-1');

  await page.click('[data-testid="exceptions-next"]');
  await waitFor('page 2 of the exception history', async () =>
    /^Page 2 of \d+$/.test((await text('[data-testid="exceptions-page-info"]')) || '')
    && (await page.$eval('[data-testid="exceptions-list"]', (e) => e.dataset.page)) === '1'
    && (await count('[data-testid="exception-entry"]')) > 0);
  const ks2 = (await shownFailures()).filter((k) => k !== null);
  check(ks2.length > 0, 'page 2 shows no "injected failure #k"');
  check(Math.max(...ks2) <= Math.min(...ks1),
    `page 2 shows failures ${JSON.stringify(ks2)}, not older than page 1's ${JSON.stringify(ks1)}`);
  check(await count('[data-testid="exception-entry"] [data-testid="root-cause-badge"]') > 0, 'page 2 has no root-cause badge');
  await assertClean('exceptions page 2');
  await shot('exceptions-page-2');
}

/** Checks the log viewer on the current page against the API listing at `base`. */
async function checkLogs(base, label) {
  const listed = async () => new Set((await api(base)).logs.map((f) => f.name));
  const before = await listed();
  await waitFor(`${label}: the log file list`, async () => {
    const shown = new Set(await attrs('[data-testid="log-file-row"]', 'data-name'));
    if (sameSet(shown, before)) return true;
    return sameSet(shown, await listed());
  });
  const files = (await api(base)).logs;
  check(files.length > 0, `${label}: the API lists no log file`);
  // The page opened its main log by itself: the newest *.log file.
  const logs = files.filter((f) => /\.log$/.test(f.name));
  if (logs.length) {
    const opened = await waitFor(`${label}: the main log opened by default`, () =>
      page.$eval('[data-testid="log-content"]', (e) => e.dataset.file || null).catch(() => null));
    check(logs.some((f) => f.name === opened), `${label}: opened "${opened}" by default, not a *.log file`);
  }
  const nonEmpty = files.filter((f) => f.size > 0);
  const view = nonEmpty.find((f) => f.size <= MAX_SHOWN / 2) || nonEmpty[0] || files[0];
  const fileUrl = `${base}/${encodeURIComponent(view.name)}`;

  // view a file
  const viewBefore = await api(fileUrl, { as: 'bytes' });
  const index = (await attrs('[data-testid="log-file-row"]', 'data-name')).indexOf(view.name);
  check(index >= 0, `${label}: ${view.name} is not in the log file list`);
  await page.locator('[data-testid="log-file-link"]').nth(index).click();
  await waitFor(`${label}: the content of ${view.name}`, () =>
    page.$eval('[data-testid="log-content"]', (e, n) => e.dataset.file === n, view.name));
  const shown = await text('[data-testid="log-content"]');
  const viewAfter = await api(fileUrl, { as: 'bytes' });
  if (viewAfter.length <= MAX_SHOWN) {
    check(between(viewBefore.toString('utf8'), shown, viewAfter.toString('utf8')),
      `${label}: ${view.name} shows ${shown.length} chars that differ from the API's file (${viewAfter.length} bytes)`);
  } else {
    check(shown.length > 0 && viewAfter.toString('utf8').includes(shown.slice(-4096, -1)),
      `${label}: the tail of ${view.name} shown is not in the API's file`);
  }

  // download it: the bytes must be the API's
  const link = page.locator('[data-testid="log-download"]');
  check((await link.getAttribute('download')) !== null, `${label}: the download link has no download attribute`);
  const href = await link.getAttribute('href');
  check(/[?&]download=true/.test(href || ''), `${label}: the download link "${href}" lacks ?download=true`);
  const dlBefore = await api(fileUrl, { as: 'bytes' });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT_MS }), link.click()]);
  const path = await download.path();
  const failure = await download.failure();
  check(failure === null && path, `${label}: downloading ${view.name} failed: ${failure}`);
  const got = await readFile(path);
  const dlAfter = await api(fileUrl, { as: 'bytes' });
  check(between(dlBefore, got, dlAfter),
    `${label}: downloaded ${got.length} bytes of ${view.name} differ from the API's (${dlBefore.length}/${dlAfter.length} bytes)`);
  if (download.suggestedFilename() !== view.name) {
    console.log(`note ${label}: the download was named "${download.suggestedFilename()}" (file "${view.name}")`);
  }

  // reload keeps the list and the open file
  await page.click('[data-testid="log-reload"]');
  await waitFor(`${label}: the list and file after Reload`, async () =>
    (await count('[data-testid="log-file-row"]')) > 0
    && page.$eval('[data-testid="log-content"]', (e, n) => e.dataset.file === n && e.textContent !== 'Loading…', view.name));

  // full screen on and off
  await page.click('[data-testid="log-fullscreen"]');
  await waitFor(`${label}: full-screen log viewer`, () =>
    page.$eval('[data-testid="log-viewer"]', (e) => e.classList.contains('fullscreen')));
  await shot(`${label}-logs-fullscreen`);
  await page.click('[data-testid="log-fullscreen"]');
  await waitFor(`${label}: log viewer back from full screen`, () =>
    page.$eval('[data-testid="log-viewer"]', (e) => !e.classList.contains('fullscreen')));
  await assertClean(`${label} logs`);
  await shot(`${label}-logs`);
}

async function checkThreadDump(path, label) {
  const dump = await api(path);
  check(Array.isArray(dump.actors) && dump.actors.length > 0, `${label}: the API's thread dump lists no actor`);
  await waitFor(`${label}: actors in the thread dump`, () => count('[data-testid="actor-row"]'));
  const threads = await count('[data-testid="thread"]');
  check(threads > 0 || dump.threadInfos.length === 0, `${label}: the thread dump shows no thread`);
  await assertClean(`${label} thread dump`);
  await shot(`${label}-thread-dump`);
}

async function checkTaskManagers() {
  const tms = (await api('taskmanagers')).taskmanagers;
  check(tms.length > 0, 'API: no TaskManager registered');
  await go('taskmanagers');
  const ids = new Set(tms.map((t) => t.id));
  await waitFor('the TaskManager list', async () =>
    sameSet(new Set(await attrs('[data-testid="tm-row"]', 'data-tm-id')), ids));
  await assertClean('taskmanagers');
  await shot('taskmanagers');

  const tm = tms[0].id;
  const row = (await attrs('[data-testid="tm-row"]', 'data-tm-id')).indexOf(tm);
  check(row >= 0, `TaskManager ${tm} is not in the list`);
  await page.locator('[data-testid="tm-link"]').nth(row).click();
  await waitFor(`the page of TaskManager ${tm}`, async () => (await text('[data-testid="tm-id"]')) === tm);
  const slots = await text('[data-testid="tm-slots"]');
  check(slots === String(tms[0].slotsNumber), `TaskManager ${tm} shows ${slots} slots, API says ${tms[0].slotsNumber}`);
  const details = await api(`taskmanagers/${encodeURIComponent(tm)}`);
  if (typeof details.metrics?.residentMemory === 'number') {
    // riffle's own figure: the TaskManager process's resident memory
    await waitFor(`the resident memory of TaskManager ${tm}`,
      async () => (await page.locator('[data-testid="tm-rss"]').count()) === 1);
  }
  // Its process figures, with each slot thread's CPU time.
  const tmMetrics = (await api(`taskmanagers/${encodeURIComponent(tm)}/metrics`)).map((m) => m.id);
  check(tmMetrics.includes('Slot.0.CPU.Time'), `no slot thread CPU among ${tmMetrics.join(', ')}`);
  await waitFor('the slot thread CPU on the TaskManager page', () =>
    count('[data-testid="tm-process-metrics"] [data-metric="Slot.0.CPU.Time"]'));
  await assertClean('taskmanager');
  await shot('taskmanager');

  await page.click('[data-testid="tab-tm-logs"]');
  await checkLogs(`taskmanagers/${encodeURIComponent(tm)}/logs`, 'taskmanager');

  await page.click('[data-testid="tab-tm-thread-dump"]');
  await checkThreadDump(`taskmanagers/${encodeURIComponent(tm)}/thread-dump`, 'taskmanager');
}

async function checkJobManager() {
  const config = await api('jobmanager/config');
  await go('jobmanager/config');
  const keys = new Set(config.map((e) => e.key));
  await waitFor('the JobManager configuration table', async () =>
    sameSet(new Set(await attrs('[data-testid="config-row"]', 'data-key')), keys));
  await assertClean('jobmanager config');
  await shot('jobmanager-config');

  await go('jobmanager/logs');
  await checkLogs('jobmanager/logs', 'jobmanager');

  await go('jobmanager/thread-dump');
  await checkThreadDump('jobmanager/thread-dump', 'jobmanager');

  // Real process figures, no JVM pools.
  const ids = (await api('jobmanager/metrics')).map((m) => m.id);
  check(!ids.some((id) => /JVM|Heap|Metaspace/.test(id)), `JVM-shaped JobManager metrics: ${ids.join(', ')}`);
  await go('jobmanager/metrics');
  await waitFor('the JobManager metrics', async () =>
    sameSet(new Set(await attrs('[data-testid="jm-metrics"] [data-testid="metric-row"]', 'data-metric')), new Set(ids)));
  const rss = Number((await attrs('[data-metric="Status.Process.Memory.Resident"] td[data-value]', 'data-value'))[0]);
  check(rss > 1024 * 1024, `the JobManager's resident memory shows ${rss} bytes`);
  const shownRss = await text('[data-metric="Status.Process.Memory.Resident"] td.num');
  check(/[KMG]iB$/.test(shownRss || ''), `resident memory is shown as "${shownRss}", not in bytes units`);
  await assertClean('jobmanager metrics');
  await shot('jobmanager-metrics');
}

async function checkSubmit() {
  const programs = (await api('programs')).programs;
  await go('submit');
  await waitFor('the program list', async () => (await count('[data-testid="program"]')) === programs.length);
  await assertClean('submit');
  await shot('submit');
  if (!programs.some((p) => p.name === 'wordcount')) {
    console.log('note no program named wordcount: submission not tested');
    return;
  }
  const form = page.locator('[data-testid="program-form"][data-program="wordcount"]');
  // A bad configuration line: the error shows next to the form, not (only) in the banner.
  await form.locator('[data-testid="program-config"]').fill('no-equals-sign');
  await form.locator('[data-testid="program-submit"]').click();
  await waitFor('the error next to the form', async () =>
    (await form.locator('[data-testid="program-error"]').isVisible())
    && (await form.locator('[data-testid="program-error"]').textContent()).includes('is not key=value'));
  await assertClean('submit error');
  await form.locator('[data-testid="program-config"]').fill('');
  await form.locator('[data-testid="program-args"]').fill('--events\n1000');
  await form.locator('[data-testid="program-submit"]').click();
  const jobId = await waitFor('the browser to land on the new job page', () =>
    page.evaluate(() => (/^#\/jobs\/([0-9a-f]{32})$/.exec(location.hash) || [])[1]), 20_000);
  check(jobId !== JOB_ID, 'submitting wordcount landed on the failing job');
  await waitFor(`job ${jobId} in jobs/overview`, async () =>
    (await api('jobs/overview')).jobs.some((j) => j.jid === jobId));
  await waitFor(`the page of job ${jobId}`, async () => (await text('[data-testid="job-id"]')) === jobId);
  await assertClean('submitted job');
  await shot('submitted-job');
}

/** A savepoint location or directory as a plain path: without "file:" / "file://", no trailing "/". */
function fsPath(location) {
  return String(location).replace(/^file:\/\/(?=\/)/, '').replace(/^file:/, '').replace(/(.)\/+$/, '$1');
}

/** The job page's action buttons on a job of the test's own (never JOB_ID). */
async function checkJobActions() {
  const programs = (await api('programs')).programs;
  if (!programs.some((p) => p.name === 'failover-demo')) {
    console.log('note no program named failover-demo: the job actions (savepoint, cancel) not tested');
    return;
  }
  const spEntry = (await api('jobmanager/config')).find((e) => e.key === 'state.savepoints.dir');
  check(spEntry && spEntry.value, 'API: jobmanager/config has no state.savepoints.dir, the savepoint check needs one');
  const spDir = fsPath(spEntry.value);

  // 1. submit failover-demo from the Submit page and land on its job page
  await go('submit');
  const form = page.locator('[data-testid="program-form"][data-program="failover-demo"]');
  await form.locator('[data-testid="program-args"]').fill('--failures\n0\n--seconds\n300\n--rate\n2');
  await form.locator('[data-testid="program-parallelism"]').fill('2');
  await form.locator('[data-testid="program-submit"]').click();
  const jobId = await waitFor('the browser to land on the failover-demo job page', () =>
    page.evaluate(() => (/^#\/jobs\/([0-9a-f]{32})$/.exec(location.hash) || [])[1]), 20_000);
  check(jobId !== JOB_ID, 'submitting failover-demo landed on the failing job');
  actionsJob = jobId;
  await waitFor(`the page of job ${jobId}`, async () => (await text('[data-testid="job-id"]')) === jobId);
  await waitFor(`job ${jobId} RUNNING on its page`, async () =>
    (await text('[data-testid="job-state"]')) === 'RUNNING', 15_000);
  const job = await api(`jobs/${jobId}`);
  check(job.state === 'RUNNING', `API: job ${jobId} is ${job.state}, its page said RUNNING`);
  const parallelism = Math.max(...job.vertices.map((v) => v.parallelism));
  check(parallelism === 2, `API: job ${jobId} runs with parallelism ${parallelism}, submitted with 2`);
  const shownName = await text('[data-testid="job-name"]');
  check(shownName === job.name, `job page shows name "${shownName}", API says "${job.name}"`);
  await assertClean('failover-demo job');

  // 2a. savepoint with the target directory left empty: the server's state.savepoints.dir
  await page.locator('[data-testid="savepoint-dir"]').fill('');
  const isTrigger = (r) => r.request().method() === 'POST'
    && new URL(r.url()).pathname.endsWith(`/jobs/${jobId}/savepoints`);
  const [triggered] = await Promise.all([
    page.waitForResponse(isTrigger, { timeout: WAIT_MS }),
    page.click('[data-testid="trigger-savepoint"]'),
  ]);
  check(triggered.status() === 202, `POST jobs/${jobId}/savepoints answered ${triggered.status()}, expected 202`);
  const sent = triggered.request().postDataJSON() || {};
  check(!sent['target-directory'], `the UI sent target-directory ${JSON.stringify(sent['target-directory'])} for an empty input`);
  check(sent['cancel-job'] !== true, 'the UI asked to cancel the job with the savepoint');
  const requestId = (await triggered.json())['request-id'];
  check(typeof requestId === 'string' && requestId !== '', `the savepoint trigger answered no request-id`);
  const outcome = await waitFor('the completed savepoint on the job page', async () => {
    const failure = await text('[data-testid="savepoint-failure"]');
    if (failure !== null) return { failure };
    const location = await text('[data-testid="savepoint-location"]');
    return location ? { location } : null;
  }, 40_000);
  check(!outcome.failure, `the savepoint failed: ${outcome.failure}`);
  const { location } = outcome;
  check(/^file:/.test(location), `the page shows savepoint location "${location}", not a file: path`);
  const op = await api(`jobs/${jobId}/savepoints/${requestId}`);
  check(op.status && op.status.id === 'COMPLETED' && op.operation && op.operation.location === location,
    `the page shows "${location}", the savepoint operation says ${JSON.stringify(op)}`);
  if (spDir.startsWith('/')) {
    check(fsPath(location).startsWith(`${spDir}/`), `savepoint "${location}" is not under state.savepoints.dir ${spDir}`);
  }
  let latest = null;
  try {
    await waitFor(`the savepoint as latest.savepoint of jobs/${jobId}/checkpoints`, async () => {
      latest = ((await api(`jobs/${jobId}/checkpoints`)).latest || {}).savepoint || null;
      return latest && latest.external_path && fsPath(latest.external_path) === fsPath(location);
    });
  } catch (err) {
    throw new CheckError(`the page shows savepoint "${location}", the API's latest.savepoint is ${JSON.stringify(latest)}`);
  }
  await assertClean('savepoint');
  await shot('savepoint-completed');

  // 2b. a relative target directory: the server answers 400, the page must say why
  await page.locator('[data-testid="savepoint-dir"]').fill('relative/dir');
  const [rejected] = await Promise.all([
    page.waitForResponse(isTrigger, { timeout: WAIT_MS }),
    page.click('[data-testid="trigger-savepoint"]'),
  ]);
  check(rejected.status() === 400, `a relative target directory answered ${rejected.status()}, expected 400`);
  const serverMessage = ((await rejected.json().catch(() => ({}))).errors || []).join('; ');
  check(/absolute path/.test(serverMessage), `the server's 400 says "${serverMessage}", nothing about an absolute path`);
  const banner = await waitFor('the savepoint error in the error banner', () =>
    page.$eval('#error-banner', (e, msg) => (!e.hidden && e.textContent.includes(msg) ? e.textContent : null), serverMessage));
  check(banner.includes('400'), `the error banner does not show the status 400: ${banner}`);
  const inline = await text('[data-testid="savepoint-status"]');
  check(!(inline || '').includes(location), `the failed request still shows the earlier savepoint: "${inline}"`);
  const latestAfter = ((await api(`jobs/${jobId}/checkpoints`)).latest || {}).savepoint || null;
  check(latestAfter && latestAfter.id === latest.id, `a rejected savepoint request changed latest.savepoint to ${JSON.stringify(latestAfter)}`);
  check(pageErrors.length === 0, `savepoint error: JavaScript error in the page: ${pageErrors.join(' | ')}`);
  await shot('savepoint-rejected');
  await page.click('[data-testid="error-dismiss"]');
  await waitFor('the error banner to close', () => page.$eval('#error-banner', (e) => e.hidden));
  await page.locator('[data-testid="savepoint-dir"]').fill('');
  await assertClean('savepoint error dismissed');

  // 3. cancel: a dismissed confirm changes nothing, an accepted one cancels
  const patches = [];
  const onRequest = (r) => {
    if (r.method() === 'PATCH' && new URL(r.url()).pathname.endsWith(`/jobs/${jobId}`)) patches.push(r.url());
  };
  page.on('request', onRequest);
  try {
    const dialogsBefore = dialogs.length;
    await page.click('[data-testid="cancel-job"]');
    await sleep(300);
    if (dialogs.length > dialogsBefore) {
      check(patches.length === 0, 'Cancel job sent a cancel request although its confirm dialog was dismissed');
      check((await api(`jobs/${jobId}`)).state === 'RUNNING', 'the job did not keep running after a dismissed confirm');
      acceptDialog = /./;
      await page.click('[data-testid="cancel-job"]');
      acceptDialog = null;
    } else {
      console.log('note Cancel job asks for no confirmation');
    }
    await waitFor('the cancel request', () => patches.length > 0);
  } finally {
    acceptDialog = null;
    page.off('request', onRequest);
  }
  const asked = dialogs.filter((d) => d.accepted);
  if (asked.length) {
    check(asked[asked.length - 1].message.includes(job.name),
      `the cancel confirmation "${asked[asked.length - 1].message}" does not name the job "${job.name}"`);
  }
  await waitFor(`job ${jobId} CANCELED on its page`, async () =>
    (await text('[data-testid="job-state"]')) === 'CANCELED', 20_000);
  await waitFor(`API: job ${jobId} CANCELED`, async () => (await api(`jobs/${jobId}`)).state === 'CANCELED');
  actionsJob = null;
  await waitFor('the action buttons disabled on the cancelled job', () => page.evaluate(() =>
    document.querySelector('[data-testid="cancel-job"]').disabled
    && document.querySelector('[data-testid="trigger-savepoint"]').disabled));
  await assertClean('cancelled job');
  await shot('job-cancelled');
}

async function checkErrorBanner() {
  const unknown = JOB_ID === '0'.repeat(32) ? '1'.repeat(32) : '0'.repeat(32);
  const answer = await api(`jobs/${unknown}`, { allowError: true });
  check(answer.status === 404, `API: jobs/${unknown} answered ${answer.status}, cannot test an unknown job`);
  // An unknown job: "job not found", no banner, and no more polling.
  const asked = [];
  const onRequest = (r) => { if (r.url().includes(unknown)) asked.push(r.url()); };
  page.on('request', onRequest);
  await go(`jobs/${unknown}`);
  await waitFor('"job not found" for an unknown job', () => count('[data-testid="job-not-found"]'));
  const refreshMs = Number((await api('config'))['refresh-interval']) || 3000;
  const seen = asked.length;
  await sleep(refreshMs * 2 + 500);
  page.off('request', onRequest);
  check(asked.length === seen, `the page kept polling the unknown job: ${asked.length - seen} more requests`);
  await assertClean('unknown job');
  await shot('job-not-found');
  // An error banner belongs to its page: it clears when the page changes.
  await go('taskmanagers/nobody');
  await waitFor('the error banner for an unknown TaskManager', () =>
    page.$eval('#error-banner', (e) => !e.hidden && e.textContent.includes('404')));
  await shot('error-banner');
  await go('overview');
  await waitFor('the banner to clear on the next page', () => page.$eval('#error-banner', (e) => e.hidden));
  await assertClean('after the banner');
}

// ------------------------------------------------------------------ main

async function main() {
  await mkdir(SHOTS, { recursive: true });
  await rm(join(SHOTS, 'FAILED.png'), { force: true });
  const t0 = Date.now();
  const job = await api(`jobs/${JOB_ID}`, { allowError: true });
  check(!job.status || job.jid, `API: job ${JOB_ID} not found (${job.status}: ${job.body})`);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(15_000);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('dialog', (dialog) => {
    const accept = acceptDialog !== null && acceptDialog.test(dialog.message());
    if (accept) acceptDialog = null;
    dialogs.push({ type: dialog.type(), message: dialog.message(), accepted: accept });
    (accept ? dialog.accept() : dialog.dismiss()).catch(() => {});
  });

  await step('overview', () => checkOverview(job));
  await step('jobs list', () => checkJobsList());
  await step('job graph', () => checkJobGraph(job));
  await step('vertex drill-down', () => checkVertex(job));
  await step('checkpoints', () => checkCheckpoints());
  await step('checkpoint drill-down', () => checkCheckpointDetail());
  await step('exceptions (paginated)', () => checkExceptions());
  await step('taskmanagers, logs, thread dump', () => checkTaskManagers());
  await step('jobmanager config, logs, thread dump', () => checkJobManager());
  await step('submit', () => checkSubmit());
  await step('job actions: savepoint, cancel', () => checkJobActions());
  await step('error banner', () => checkErrorBanner());
  console.log(`PASS: all UI checks passed in ${Date.now() - t0} ms; screenshots in ${SHOTS}`);
}

try {
  await main();
  await browser.close();
  clearTimeout(watchdog);
} catch (err) {
  console.error(`FAIL [${stepName || 'setup'}]: ${err instanceof CheckError ? err.message : err.stack || err}`);
  if (page) await page.screenshot({ path: join(SHOTS, 'FAILED.png'), fullPage: true }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  if (actionsJob) {
    // do not leave the 5-minute job of the actions step running on the cluster
    await apiSend('PATCH', `jobs/${actionsJob}?mode=cancel`, {}).catch(() => {});
  }
  process.exit(1);
}
