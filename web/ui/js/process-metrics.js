// A process's real figures (GET jobmanager/metrics, taskmanagers/<id>/metrics): CPU, resident
// memory, threads, machine, slots, network pool, per-slot thread CPU, formatted by kind.

import { getJson } from './api.js';
import { h, table } from './dom.js';
import { formatBytes, formatCount, formatDuration, formatPercent } from './format.js';

/** A metric's value formatted by what its name says it is. */
export function formatMetric(id, value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (/CPU\.Load$/.test(id)) return formatPercent(n);
  if (/CPU\.Time$/.test(id)) return formatDuration(n);
  if (/Memory(\.[A-Za-z]+|Budget)?$/.test(id)) return formatBytes(n);
  return formatCount(n);
}

/** All metrics of `path` (ids first, then their values): [{id, value}]. */
export async function loadMetrics(path) {
  const ids = await getJson(path);
  if (!Array.isArray(ids) || ids.length === 0) return [];
  return getJson(`${path}?get=${ids.map((m) => encodeURIComponent(m.id)).join(',')}`);
}

/** The metrics as a two-column table. */
export function metricsTable(metrics, testid) {
  return table(['Metric', 'Value'], metrics.map((m) => h('tr', { 'data-testid': 'metric-row', 'data-metric': m.id }, [
    h('td', { class: 'mono' }, m.id),
    h('td', { class: 'num', 'data-value': m.value }, formatMetric(m.id, m.value)),
  ])), { 'data-testid': testid, empty: 'No metrics' });
}
