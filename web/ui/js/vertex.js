// Vertex page (#/jobs/<id>/vertices/<vid>): the subtask table (status, attempt, where it
// runs, records and bytes, backpressured/idle/busy shares, duration), each subtask's input
// watermark, and a chart of any of the vertex's metrics, sampled at every refresh.

import { getJson, seg } from './api.js';
import { barChart } from './chart.js';
import { h, link, replace, section, stateBadge, table } from './dom.js';
import { formatBytes, formatCount, formatDuration, formatPercent, formatTime } from './format.js';

const MAX_SAMPLES = 60;
const LONG_MIN = '-9223372036854775808';
const LONG_MAX = '9223372036854775807';

/** A watermark metric value (a string of epoch ms) as display text. */
export function formatWatermark(value) {
  if (value === undefined || value === null || value === LONG_MIN) return 'no watermark';
  if (value === LONG_MAX) return 'end of input';
  const ms = Number(value);
  if (!Number.isFinite(ms)) return String(value);
  return `${formatTime(ms)} (${ms})`;
}

function subtaskRows(subtasks) {
  return subtasks.map((s) => {
    const m = s.metrics || {};
    const level = s['backpressure-level'] || 'ok';
    return h('tr', { 'data-testid': 'subtask-row', 'data-subtask': String(s.subtask) }, [
      h('td', { class: 'num' }, String(s.subtask)),
      h('td', {}, stateBadge(s.status)),
      h('td', { class: 'num' }, String(s.attempt ?? '-')),
      h('td', { class: 'mono small wrap', 'data-testid': 'subtask-endpoint', title: s['taskmanager-id'] || '' },
        [s.endpoint || '-', h('div', { class: 'muted' }, s['taskmanager-id'] || '')]),
      h('td', { class: 'num', 'data-testid': 'subtask-records-in' }, [formatCount(m['read-records']),
        h('div', { class: 'small muted' }, formatBytes(m['read-bytes']))]),
      h('td', { class: 'num', 'data-testid': 'subtask-records-out' }, [formatCount(m['write-records']),
        h('div', { class: 'small muted' }, formatBytes(m['write-bytes']))]),
      h('td', {}, [h('span', { class: `badge bp-${level}` }, level), ' ', formatPercent(s['backpressured-ratio'])]),
      h('td', { class: 'num' }, `${formatPercent(s['busy-ratio'])} / ${formatPercent(s['idle-ratio'])}`),
      h('td', {}, [h('div', { class: 'nowrap' }, formatTime(s['start-time'])),
        h('div', { class: 'small muted' }, formatDuration(s.duration))]),
    ]);
  });
}

export function mount(root, params, ctx) {
  const jobId = params.id;
  const vertexId = params.vid;
  const base = `jobs/${seg(jobId)}/vertices/${seg(vertexId)}`;
  const title = h('h1', { class: 'vertex-title', 'data-testid': 'vertex-name' }, vertexId);
  const info = h('div', { class: 'muted' });
  const subtasksBox = h('div', {}, 'Loading subtasks…');
  const watermarksBox = h('div');
  const picker = h('select', { 'data-testid': 'metric-picker', 'aria-label': 'Metric to chart' });
  const chartBox = h('div', { 'data-testid': 'metric-chart-box' }, h('p', { class: 'muted' }, 'Pick a metric.'));
  replace(root, [
    h('div', { class: 'card' }, [
      h('div', {}, link(`/jobs/${jobId}`, '← job', { 'data-testid': 'back-to-job' })),
      title,
      info,
    ]),
    section('Subtasks', subtasksBox),
    section('Watermarks', watermarksBox),
    section('Metrics', [h('div', { class: 'metric-controls' }, ['Metric: ', picker]), chartBox]),
  ]);

  let metricIds = null;
  let samples = [];
  picker.addEventListener('change', () => {
    samples = [];
    sampleMetric().catch(() => {});
  });

  async function sampleMetric() {
    const id = picker.value;
    if (!id) return;
    const answer = await getJson(`${base}/metrics?get=${encodeURIComponent(id)}`);
    if (!ctx.alive() || picker.value !== id) return;
    const value = answer.length ? Number(answer[0].value) : NaN;
    samples.push({ t: Date.now(), value });
    if (samples.length > MAX_SAMPLES) samples.shift();
    const latest = answer.length ? answer[0].value : '-';
    const watermark = /Watermark$/.test(id);
    const shown = watermark ? formatWatermark(latest) : latest;
    const bars = watermark ? [] : samples.map((x, i) => ({ label: String(i + 1), value: x.value }));
    replace(chartBox, [
      h('p', {}, [h('span', { class: 'mono' }, id), ': ', h('strong', { 'data-testid': 'metric-value' }, shown),
        watermark ? null : h('span', { class: 'muted' }, ' (the chart adds one bar per refresh)')]),
      watermark ? null : barChart({
        title: '', testid: 'metric-chart', bars,
        format: (v) => formatCount(v),
      }),
    ]);
  }

  return {
    async refresh() {
      const vertex = await getJson(base);
      if (!ctx.alive()) return;
      title.textContent = vertex.name;
      title.setAttribute('title', vertex.name);
      replace(info, [h('span', { class: 'mono' }, vertex.id), ` · parallelism ${vertex.parallelism}`,
        ` · max parallelism ${vertex.maxParallelism}`]);
      const subtasks = vertex.subtasks || [];
      replace(subtasksBox, table(['#', 'Status', 'Attempt', 'TaskManager', 'Received (records, bytes)',
        'Sent (records, bytes)', 'Backpressure', 'Busy / idle', 'Start, duration'], subtaskRows(subtasks),
      { 'data-testid': 'subtask-table', class: 'vertex-table', empty: 'No subtasks' }));

      const watermarks = await getJson(`${base}/watermarks`);
      if (!ctx.alive()) return;
      replace(watermarksBox, table(['Subtask', 'Current input watermark'], watermarks.map((w) =>
        h('tr', { 'data-testid': 'watermark-row' }, [
          h('td', { class: 'num' }, w.id.split('.')[0]),
          h('td', { 'data-testid': 'watermark-value', 'data-value': w.value }, formatWatermark(w.value)),
        ])), { 'data-testid': 'watermark-table', empty: 'No subtasks' }));

      if (metricIds === null) {
        const list = await getJson(`${base}/metrics`);
        if (!ctx.alive()) return;
        metricIds = list.map((m) => m.id);
        replace(picker, [h('option', { value: '' }, '(choose a metric)'),
          ...metricIds.map((id) => h('option', { value: id }, id))]);
      }
      await sampleMetric();
    },
  };
}
