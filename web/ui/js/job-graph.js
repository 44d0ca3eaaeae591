// The job page's overview tab: job graph and vertex table, with records/s computed from
// successive polls of GET jobs/<id>.

import { getJson, seg } from './api.js';
import { h, link, replace, section, table } from './dom.js';
import { formatBytes, formatCount, formatDuration, formatPercent, formatRate, formatTime } from './format.js';
import { planEdges, renderGraph } from './graph.js';

function vertexTaskCounts(tasks) {
  const parts = Object.entries(tasks || {})
    .filter(([, n]) => n > 0)
    .map(([state, n]) => h('span', { class: `badge count state-${state.toLowerCase()}`, title: state }, String(n)));
  return h('span', { class: 'task-counts' }, parts.length ? parts : '0');
}

/** Keeps the previous sample of each vertex's counters to turn them into rates. */
class RateTracker {
  constructor() {
    this.previous = new Map(); // id -> {t, read, write}
    this.last = new Map(); // id -> the rates computed last time
  }

  /** Returns id -> {in, out} records per second (null until two samples exist). */
  update(job) {
    const now = typeof job.now === 'number' && job.now > 0 ? job.now : Date.now();
    const rates = new Map();
    for (const v of job.vertices || []) {
      const m = v.metrics || {};
      const sample = { t: now, read: m['read-records'], write: m['write-records'] };
      const prev = this.previous.get(v.id);
      let rate = { in: null, out: null };
      if (prev && sample.t > prev.t) {
        const dt = (sample.t - prev.t) / 1000;
        const per = (a, b) => (typeof a === 'number' && typeof b === 'number' && a >= b ? (a - b) / dt : null);
        rate = { in: per(sample.read, prev.read), out: per(sample.write, prev.write) };
      }
      if (!prev || sample.t > prev.t) this.previous.set(v.id, sample);
      else rate = this.last.get(v.id) ?? rate; // same sample again: keep the last rate
      rates.set(v.id, rate);
    }
    this.last = rates;
    return rates;
  }
}

export function create(container, jobId, ctx) {
  const graphBox = h('div', { class: 'graph-scroll', 'data-testid': 'graph-container' }, 'Loading the job graph…');
  const verticesBox = h('div');
  replace(container, [
    section('Job graph', [
      h('div', { class: 'legend' }, [
        'Backpressure: ',
        h('span', { class: 'badge bp-ok' }, 'ok'), ' ',
        h('span', { class: 'badge bp-low' }, 'low'), ' ',
        h('span', { class: 'badge bp-high' }, 'high'),
      ]),
      graphBox,
    ]),
    section('Vertices', verticesBox),
  ]);

  const tracker = new RateTracker();
  let planNodes = null;

  return {
    async update(job) {
      if (planNodes === null) {
        const plan = await getJson(`jobs/${seg(jobId)}/plan`);
        if (!ctx.alive()) return;
        planNodes = (plan.plan && plan.plan.nodes) || [];
      }
      const vertices = job.vertices || [];
      const rates = tracker.update(job);
      const hasInput = new Set(planEdges(planNodes).map((e) => e.to));
      const boxRates = new Map();
      for (const v of vertices) {
        const r = rates.get(v.id);
        const dir = hasInput.has(v.id) ? 'in' : 'out';
        boxRates.set(v.id, r && r[dir] !== null ? { value: r[dir], dir } : null);
      }
      replace(graphBox, renderGraph(vertices, planNodes, boxRates));

      const rows = vertices.map((v) => {
        const m = v.metrics || {};
        const r = rates.get(v.id) || {};
        const level = v['backpressure-level'] || 'ok';
        return h('tr', { 'data-testid': 'vertex-row', 'data-vertex-id': v.id }, [
          h('td', { class: 'vertex-name-cell', title: `${v.name}\n${v.id}` }, [
            link(`/jobs/${jobId}/vertices/${v.id}`, v.name, { 'data-testid': 'vertex-link', class: 'vertex-name' }),
            h('div', { class: 'mono small muted' }, v.id)]),
          h('td', {}, h('span', { class: `badge state state-${String(v.status).toLowerCase()}` }, v.status)),
          h('td', { class: 'num' }, String(v.parallelism ?? '-')),
          h('td', { class: 'num' }, [formatCount(m['read-records']), h('div', { class: 'small muted' },
            formatBytes(m['read-bytes']))]),
          h('td', { class: 'num' }, [formatCount(m['write-records']), h('div', { class: 'small muted' },
            formatBytes(m['write-bytes']))]),
          h('td', { class: 'num' }, `${formatRate(r.in)} / ${formatRate(r.out)}`),
          h('td', {}, [h('span', { class: `badge bp-${level}` }, level), ' ', formatPercent(v['backpressured-ratio'])]),
          h('td', {}, vertexTaskCounts(v.tasks)),
          h('td', {}, [h('div', { class: 'nowrap' }, formatTime(v['start-time'])),
            h('div', { class: 'small muted' }, formatDuration(v.duration))]),
        ]);
      });
      replace(verticesBox, table(['Name', 'Status', 'Parallelism', 'Received (records, bytes)',
        'Sent (records, bytes)', 'Records/s in / out', 'Backpressure', 'Tasks', 'Start, duration'], rows,
      { 'data-testid': 'vertex-table', class: 'vertex-table', empty: 'No vertices' }));
    },
  };
}
