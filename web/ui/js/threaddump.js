// Thread dump view shared by the JobManager and TaskManager pages (FLINK-14816): threads,
// actors (mailbox length, activity) and subtasks (backpressure).

import { getJson } from './api.js';
import { showError } from './banner.js';
import { h, replace, section, table } from './dom.js';
import { formatTime, formatValue } from './format.js';

/** Mounts a thread dump view for `path`; returns {load()}. */
export function threadDump(container, path) {
  const reload = h('button', { type: 'button', 'data-testid': 'thread-dump-reload' }, 'Take a new dump');
  const taken = h('span', { class: 'muted', 'data-testid': 'thread-dump-time' });
  const body = h('div', { 'data-testid': 'thread-dump' }, 'Loading the thread dump…');
  replace(container, [h('div', { class: 'toolbar' }, [reload, taken]), body]);
  reload.addEventListener('click', () => load().catch((err) => showError(err)));

  async function load() {
    const dump = await getJson(path);
    const actors = Array.isArray(dump.actors) ? dump.actors : [];
    const subtasks = Array.isArray(dump.subtasks) ? dump.subtasks : [];
    const threads = Array.isArray(dump.threadInfos) ? dump.threadInfos : [];
    taken.textContent = `taken at ${formatTime(Date.now())}`;
    replace(body, [
      section(`Actors (${actors.length})`, table(['Name', 'Mailbox', 'Activity', 'Since'],
        actors.map((a) => h('tr', { 'data-testid': 'actor-row' }, [
          h('td', { class: 'mono' }, formatValue(a.name)),
          h('td', { class: 'num' }, formatValue(a.mailbox)),
          h('td', {}, formatValue(a.activity)),
          h('td', { class: 'nowrap' }, typeof a.since === 'number' ? formatTime(a.since) : formatValue(a.since)),
        ])), { 'data-testid': 'actors-table', empty: 'No actors' })),
      section(`Subtasks (${subtasks.length})`, table(['Job', 'Vertex', 'Subtask', 'State', 'Backpressured'],
        subtasks.map((t) => h('tr', { 'data-testid': 'subtask-row' }, [
          h('td', { class: 'mono' }, formatValue(t.job)),
          h('td', {}, formatValue(t.vertex)),
          h('td', { class: 'num' }, formatValue(t.subtask)),
          h('td', {}, formatValue(t.state)),
          h('td', {}, t.backpressured
            ? h('span', { class: 'badge bp-high' }, 'yes')
            : h('span', { class: 'badge bp-ok' }, 'no')),
        ])), { 'data-testid': 'subtasks-table', empty: 'No subtasks' })),
      section(`Threads (${threads.length})`, threads.length
        ? h('div', { class: 'threads' }, threads.map((t) => h('details', { class: 'thread', 'data-testid': 'thread' }, [
          h('summary', { class: 'mono' }, formatValue(t.threadName)),
          h('pre', {}, formatValue(t.stringifiedThreadInfo)),
        ])))
        : h('p', { class: 'muted' }, 'No threads')),
    ]);
  }

  return { load };
}
