// Overview page (#/overview): cluster numbers and the running / completed jobs.

import { all, getJson } from './api.js';
import { h, replace, section } from './dom.js';
import { jobsTable, splitJobs } from './jobs.js';

const NUMBERS = [
  ['taskmanagers', 'Task Managers'],
  ['slots-total', 'Total slots'],
  ['slots-available', 'Available slots'],
  ['jobs-running', 'Running jobs'],
  ['jobs-finished', 'Finished jobs'],
  ['jobs-cancelled', 'Cancelled jobs'],
  ['jobs-failed', 'Failed jobs'],
];

function numbers(overview) {
  return h('div', { class: 'stats', 'data-testid': 'cluster-numbers' }, NUMBERS.map(([key, label]) =>
    h('div', { class: `stat stat-${key}` }, [
      h('div', { class: 'stat-value', 'data-testid': `overview-${key}` }, String(overview[key] ?? '-')),
      h('div', { class: 'stat-label' }, label),
    ])));
}

export function mount(root, _params, ctx) {
  const stats = h('div');
  const running = h('div');
  const completed = h('div');
  replace(root, [
    h('h1', {}, 'Overview'),
    stats,
    section('Running jobs', running),
    section('Completed jobs', completed),
  ]);
  return {
    async refresh() {
      const [overview, jobs] = await all([getJson('overview'), getJson('jobs/overview')]);
      if (!ctx.alive()) return;
      replace(stats, numbers(overview));
      const split = splitJobs(jobs);
      replace(running, jobsTable(split.running, 'running-jobs', 'No running jobs'));
      replace(completed, jobsTable(split.completed, 'completed-jobs', 'No completed jobs'));
    },
  };
}
