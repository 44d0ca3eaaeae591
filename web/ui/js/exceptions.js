// The job page's exceptions tab: the failover history (FLIP-99), newest first, paged with
// GET jobs/<id>/exceptions?page=P&size=S.

import { getJson, seg } from './api.js';
import { showError } from './banner.js';
import { h, replace } from './dom.js';
import { formatTime } from './format.js';

const SIZES = [5, 10, 20, 50];

function firstLine(text) {
  return String(text || '').split('\n', 1)[0];
}

function entryKey(entry) {
  return `${entry.timestamp}|${entry.exceptionName}|${entry.taskName}|${entry.location}`;
}

export function create(container, jobId, ctx) {
  let page = 0;
  let size = SIZES[0];
  let sequence = 0;
  const open = new Set(); // keys of expanded stack traces, kept across refreshes

  const info = h('span', { class: 'page-info', 'data-testid': 'exceptions-page-info' }, '');
  const total = h('span', { class: 'muted', 'data-testid': 'exceptions-total' });
  const prev = h('button', { type: 'button', 'data-testid': 'exceptions-prev', disabled: true }, '‹ Previous');
  const next = h('button', { type: 'button', 'data-testid': 'exceptions-next', disabled: true }, 'Next ›');
  const sizeSelect = h('select', { 'data-testid': 'exceptions-size', 'aria-label': 'Entries per page' },
    SIZES.map((n) => h('option', { value: n, selected: n === size }, `${n} per page`)));
  const list = h('div', { class: 'exception-list', 'data-testid': 'exceptions-list' }, 'Loading exceptions…');

  replace(container, h('section', { class: 'card' }, [
    h('h2', {}, 'Failover history'),
    h('div', { class: 'pager' }, [prev, info, next, sizeSelect, total]),
    list,
  ]));

  const go = (target) => {
    page = Math.max(0, target);
    load().catch((err) => showError(err));
  };
  prev.addEventListener('click', () => go(page - 1));
  next.addEventListener('click', () => go(page + 1));
  sizeSelect.addEventListener('change', () => {
    size = Number(sizeSelect.value);
    go(0);
  });

  function details(entry, label) {
    const key = entryKey(entry);
    const el = h('details', { class: 'stacktrace', open: open.has(key) }, [
      h('summary', {}, label),
      h('pre', { 'data-testid': 'exception-stacktrace' }, entry.stacktrace || '(no stack trace)'),
    ]);
    el.addEventListener('toggle', () => (el.open ? open.add(key) : open.delete(key)));
    return el;
  }

  function renderEntry(entry, nested) {
    const meta = [
      ['Time', formatTime(entry.timestamp)],
      ['Task', entry.taskName || '(global failure)'],
      ['Location', entry.location
        ? `${entry.location}${entry.taskManagerId && entry.taskManagerId !== entry.location
          ? ` (${entry.taskManagerId})` : ''}`
        : '-'],
      ['Attempt', entry.attempt ?? '-'],
    ];
    const message = firstLine(entry.stacktrace);
    const concurrent = Array.isArray(entry.concurrentExceptions) ? entry.concurrentExceptions : [];
    return h('article', {
      class: nested ? 'exception concurrent' : 'exception',
      'data-testid': nested ? 'concurrent-exception' : 'exception-entry',
      'data-timestamp': String(entry.timestamp ?? ''),
    }, [
      h('div', { class: 'exception-head' }, [
        entry.isRootCause ? h('span', { class: 'badge root-cause', 'data-testid': 'root-cause-badge' }, 'root cause') : null,
        h('strong', { class: 'exception-name', 'data-testid': 'exception-name' }, entry.exceptionName || '(unknown)'),
      ]),
      message && message !== entry.exceptionName
        ? h('div', { class: 'exception-message', 'data-testid': 'exception-message' }, message) : null,
      h('dl', { class: 'exception-meta' }, meta.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])),
      details(entry, 'Stack trace'),
      concurrent.length
        ? h('details', { class: 'concurrent-list' }, [
          h('summary', {}, `${concurrent.length} concurrent exception${concurrent.length > 1 ? 's' : ''}`),
          concurrent.map((c) => renderEntry(c, true)),
        ])
        : null,
    ]);
  }

  async function load() {
    const mine = ++sequence;
    const answer = await getJson(`jobs/${seg(jobId)}/exceptions?page=${page}&size=${size}`);
    if (!ctx.alive() || mine !== sequence) return;
    const history = answer.exceptionHistory || {};
    const entries = Array.isArray(history.entries) ? history.entries : [];
    const count = typeof answer.total === 'number' ? answer.total : entries.length;
    const pages = Math.max(1, Math.ceil(count / size));
    if (page >= pages && page > 0) {
      page = pages - 1; // the history shrank or the size changed: show the last page
      return load();
    }
    info.textContent = `Page ${page + 1} of ${pages}`;
    total.textContent = `${count} failure${count === 1 ? '' : 's'}${history.truncated ? ' (older entries truncated)' : ''}`;
    prev.disabled = page === 0;
    next.disabled = page + 1 >= pages;
    list.dataset.page = String(page);
    replace(list, entries.length
      ? entries.map((entry) => renderEntry(entry, false))
      : h('p', { class: 'muted', 'data-testid': 'no-exceptions' }, 'No failures recorded for this job.'));
  }

  return { update: load };
}
