// Job page (#/jobs/<id>[/checkpoints|/exceptions]): header with times and actions (cancel,
// savepoint), tabs, and the selected tab's content.

import { getJson, sendJson, seg } from './api.js';
import { showError } from './banner.js';
import { h, kvTable, replace, stateBadge, tabs } from './dom.js';
import { formatDuration, formatTime, isTerminal } from './format.js';
import * as graphTab from './job-graph.js';
import * as checkpointsTab from './checkpoints.js';
import * as exceptionsTab from './exceptions.js';

const TABS = { overview: graphTab, checkpoints: checkpointsTab, exceptions: exceptionsTab };
const SAVEPOINT_POLL_MS = 1000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function mount(root, params, ctx) {
  const jobId = params.id;
  const base = `/jobs/${seg(jobId)}`;
  const title = h('h1', { 'data-testid': 'job-name' }, jobId);
  const info = h('div', { class: 'job-info' });
  const cancelButton = h('button', { type: 'button', class: 'danger', 'data-testid': 'cancel-job', disabled: true },
    'Cancel job');
  const savepointDir = h('input', {
    type: 'text', placeholder: 'target directory (empty: state.savepoints.dir)',
    'data-testid': 'savepoint-dir', 'aria-label': 'Savepoint target directory',
  });
  const savepointButton = h('button', { type: 'button', 'data-testid': 'trigger-savepoint', disabled: true },
    'Trigger savepoint');
  const savepointStatus = h('div', { class: 'savepoint-status', 'data-testid': 'savepoint-status' });
  const content = h('div', { 'data-testid': `job-tab-${params.tab}` });

  replace(root, [
    h('div', { class: 'job-header card' }, [
      h('div', { class: 'job-title' }, [title, h('span', { 'data-testid': 'job-state' })]),
      info,
      h('div', { class: 'job-actions' }, [cancelButton, savepointDir, savepointButton]),
      savepointStatus,
    ]),
    tabs([
      { route: base, label: 'Overview', active: params.tab === 'overview', testid: 'tab-overview' },
      { route: `${base}/exceptions`, label: 'Exceptions', active: params.tab === 'exceptions', testid: 'tab-exceptions' },
      { route: `${base}/checkpoints`, label: 'Checkpoints', active: params.tab === 'checkpoints', testid: 'tab-checkpoints' },
    ]),
    content,
  ]);

  const tab = TABS[params.tab].create(content, jobId, ctx);
  let job = null;
  let missing = false;
  let savepointRunning = false;

  cancelButton.addEventListener('click', async () => {
    const name = job ? job.name : jobId;
    if (!window.confirm(`Cancel job "${name}"?`)) return;
    cancelButton.disabled = true;
    try {
      await sendJson('PATCH', `jobs/${seg(jobId)}?mode=cancel`, {});
      replace(savepointStatus, 'Cancellation requested.');
    } catch (err) {
      showError(err, 'Cancel job');
      cancelButton.disabled = false;
    }
  });

  savepointButton.addEventListener('click', async () => {
    savepointButton.disabled = true;
    savepointRunning = true;
    const dir = savepointDir.value.trim();
    try {
      const answer = await sendJson('POST', `jobs/${seg(jobId)}/savepoints`,
        { 'target-directory': dir === '' ? null : dir, 'cancel-job': false });
      const requestId = answer['request-id'];
      replace(savepointStatus, ['Savepoint in progress (request ', h('span', { class: 'mono' }, requestId), ')…']);
      await pollSavepoint(requestId);
    } catch (err) {
      showError(err, 'Savepoint');
      if (ctx.alive()) replace(savepointStatus, 'Savepoint request failed.');
    } finally {
      savepointRunning = false;
      savepointButton.disabled = job === null || isTerminal(job.state);
    }
  });

  async function pollSavepoint(requestId) {
    while (ctx.alive()) {
      const answer = await getJson(`jobs/${seg(jobId)}/savepoints/${seg(requestId)}`);
      if (!ctx.alive()) return;
      if (answer.status && answer.status.id === 'COMPLETED') {
        const op = answer.operation || {};
        if (op['failure-cause']) {
          const cause = op['failure-cause'];
          replace(savepointStatus, h('div', { class: 'failure', 'data-testid': 'savepoint-failure' }, [
            h('strong', {}, `Savepoint failed: ${cause.class || ''}`),
            h('pre', {}, cause['stack-trace'] || ''),
          ]));
        } else {
          replace(savepointStatus, h('div', { class: 'success' }, [
            'Savepoint completed: ',
            h('span', { class: 'mono', 'data-testid': 'savepoint-location' }, op.location || '(no location)'),
          ]));
        }
        return;
      }
      await sleep(SAVEPOINT_POLL_MS);
    }
  }

  function renderHeader() {
    title.textContent = job.name || '(unnamed)';
    replace(title.nextSibling, stateBadge(job.state));
    replace(info, kvTable([
      ['Job id', h('span', { class: 'mono', 'data-testid': 'job-id' }, job.jid)],
      ['Start time', formatTime(job['start-time'])],
      ['End time', formatTime(job['end-time'])],
      ['Duration', formatDuration(job.duration)],
    ], { class: 'compact' }));
    const terminal = isTerminal(job.state);
    cancelButton.disabled = terminal || job.state === 'CANCELLING';
    savepointButton.disabled = terminal || savepointRunning;
  }

  return {
    async refresh() {
      if (missing) return; // an unknown job stays unknown: no more polling
      let answer;
      try {
        answer = await getJson(`jobs/${seg(jobId)}`);
      } catch (err) {
        if (err.status !== 404 && err.status !== 400) throw err;
        if (!ctx.alive()) return;
        missing = true;
        replace(root, h('section', { class: 'card', 'data-testid': 'job-not-found' }, [
          h('h2', {}, 'Job not found'),
          h('p', {}, [`This cluster has no job "${jobId}" `,
            h('span', { class: 'muted' }, `(${err.messages ? err.messages.join('; ') : err.message})`), '.']),
          h('a', { href: '#/jobs' }, 'Go to the job list'),
        ]));
        return;
      }
      if (!ctx.alive()) return;
      job = answer;
      renderHeader();
      await tab.update(job);
    },
    dispose() {
      if (tab.dispose) tab.dispose();
    },
  };
}
