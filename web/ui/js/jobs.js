// Jobs list page (#/jobs) and the job table shared with the overview page.

import { getJson, seg } from './api.js';
import { h, link, replace, section, stateBadge, table } from './dom.js';
import { formatDuration, formatTime, isTerminal } from './format.js';

const TASK_STATES = ['created', 'scheduled', 'deploying', 'running', 'finished', 'canceling',
  'canceled', 'failed', 'reconciling'];

/** Small coloured counts of a job's tasks per state ({total, running, ...}). */
export function taskCounts(tasks) {
  if (!tasks) return '-';
  const parts = TASK_STATES
    .filter((name) => tasks[name] > 0)
    .map((name) => h('span', { class: `badge count state-${name}`, title: name }, String(tasks[name])));
  return h('span', { class: 'task-counts' }, parts.length ? parts : String(tasks.total ?? 0));
}

/** A table of jobs from GET jobs/overview; every row links to its job. */
export function jobsTable(jobs, testid, empty) {
  const rows = jobs.map((job) => h('tr', { 'data-testid': 'job-row', 'data-job-id': job.jid }, [
    h('td', {}, link(`/jobs/${seg(job.jid)}`, job.name || '(unnamed)', { class: 'job-name' })),
    h('td', { class: 'mono' }, job.jid),
    h('td', { class: 'nowrap' }, formatTime(job['start-time'])),
    h('td', { class: 'nowrap' }, formatTime(job['end-time'])),
    h('td', {}, formatDuration(job.duration)),
    h('td', {}, taskCounts(job.tasks)),
    h('td', {}, stateBadge(job.state)),
  ]));
  return table(['Job name', 'Job id', 'Start time', 'End time', 'Duration', 'Tasks', 'Status'],
    rows, { 'data-testid': testid, empty });
}

/** Splits GET jobs/overview into running and completed jobs (answer is newest first). */
export function splitJobs(overview) {
  const all = Array.isArray(overview.jobs) ? overview.jobs : [];
  return {
    running: all.filter((job) => !isTerminal(job.state)),
    completed: all.filter((job) => isTerminal(job.state)),
  };
}

export function mount(root, _params, ctx) {
  const body = h('div');
  replace(root, [h('h1', {}, 'Jobs'), body]);
  return {
    async refresh() {
      const overview = await getJson('jobs/overview');
      if (!ctx.alive()) return;
      const { running, completed } = splitJobs(overview);
      replace(body, [
        section(`Running jobs (${running.length})`, jobsTable(running, 'running-jobs', 'No running jobs')),
        section(`Completed jobs (${completed.length})`,
          jobsTable(completed, 'completed-jobs', 'No completed jobs')),
      ]);
    },
  };
}
