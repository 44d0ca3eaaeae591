// The job page's checkpoints tab: counts, latest, summary, configuration, a chart of
// duration and size per checkpoint, and the history table.

import { getJson, seg } from './api.js';
import { barChart } from './chart.js';
import { h, kvTable, link, replace, section, stateBadge, table } from './dom.js';
import { formatBytes, formatDuration, formatTime, formatValue } from './format.js';

function notEnabled(err) {
  return h('p', { class: 'muted', 'data-testid': 'checkpoints-disabled' },
    `Checkpoint statistics are not available: ${err.messages ? err.messages.join('; ') : err.message}`);
}

function counts(c) {
  const keys = [['total', 'Triggered'], ['in_progress', 'In progress'], ['completed', 'Completed'],
    ['failed', 'Failed'], ['restored', 'Restored']];
  return h('div', { class: 'stats', 'data-testid': 'checkpoint-counts' }, keys.map(([key, label]) =>
    h('div', { class: `stat stat-${key}` }, [
      h('div', { class: 'stat-value', 'data-testid': `checkpoints-${key}` }, formatValue(c[key])),
      h('div', { class: 'stat-label' }, label),
    ])));
}

function latest(l) {
  const rows = [];
  const cp = (x) => (x ? `#${x.id}` : 'none');
  rows.push(['Latest completed', l.completed
    ? [cp(l.completed), ` · ${formatTime(l.completed.latest_ack_timestamp)} · ${formatBytes(l.completed.state_size)}`
      + ` · ${formatDuration(l.completed.end_to_end_duration)}`,
    l.completed.external_path ? h('div', { class: 'mono small' }, l.completed.external_path) : null]
    : 'none']);
  rows.push(['Latest savepoint', l.savepoint
    ? [cp(l.savepoint), ` · ${formatTime(l.savepoint.latest_ack_timestamp)}`,
      l.savepoint.external_path ? h('div', { class: 'mono small' }, l.savepoint.external_path) : null]
    : 'none']);
  rows.push(['Latest failed', l.failed
    ? [cp(l.failed), ` · ${formatTime(l.failed.failure_timestamp)}`,
      h('div', { class: 'failure small' }, l.failed.failure_message || '')]
    : 'none']);
  rows.push(['Latest restore', l.restored
    ? [cp(l.restored), ` · ${formatTime(l.restored.restore_timestamp)}`
      + `${l.restored.is_savepoint ? ' (savepoint)' : ''}`,
    l.restored.external_path ? h('div', { class: 'mono small' }, l.restored.external_path) : null]
    : 'none']);
  return kvTable(rows, { 'data-testid': 'checkpoint-latest' });
}

function summary(sm) {
  const stat = (x, fmt) => (x ? `${fmt(x.min)} / ${fmt(x.avg)} / ${fmt(x.max)}` : '-');
  return kvTable([
    ['State size (min / avg / max)', stat(sm.state_size, formatBytes)],
    ['End to end duration (min / avg / max)', stat(sm.end_to_end_duration, formatDuration)],
    ['Buffered during alignment (min / avg / max)', stat(sm.alignment_buffered, formatBytes)],
  ]);
}

function configTable(c) {
  return kvTable([
    ['Mode', formatValue(c.mode)],
    ['Interval', formatDuration(c.interval)],
    ['Timeout', formatDuration(c.timeout)],
    ['Minimum pause', formatDuration(c.min_pause)],
    ['Maximum concurrent', formatValue(c.max_concurrent)],
    ['Externalized', c.externalization
      ? `${c.externalization.enabled ? 'enabled' : 'disabled'}${c.externalization.delete_on_cancellation ? ', deleted on cancellation' : ''}`
      : '-'],
    ['State backend', formatValue(c.state_backend)],
    ['Unaligned checkpoints', formatValue(c.unaligned_checkpoints)],
  ], { 'data-testid': 'checkpoint-config' });
}

function duration(cp) {
  return typeof cp.end_to_end_duration === 'number' ? cp.end_to_end_duration : null;
}

function charts(history) {
  const ordered = [...history].sort((a, b) => a.id - b.id);
  const cls = (cp) => `status-${String(cp.status).toLowerCase()}`;
  return h('div', { class: 'charts', 'data-testid': 'checkpoint-chart' }, [
    barChart({
      title: 'Duration', testid: 'checkpoint-duration-chart', format: formatDuration,
      bars: ordered.map((cp) => ({ label: String(cp.id), value: duration(cp) ?? 0, cls: cls(cp) })),
    }),
    barChart({
      title: 'State size', testid: 'checkpoint-size-chart', format: formatBytes,
      bars: ordered.map((cp) => ({ label: String(cp.id), value: cp.state_size ?? 0, cls: cls(cp) })),
    }),
  ]);
}

function historyTable(history, jobId) {
  const rows = history.map((cp) => h('tr', { 'data-testid': 'checkpoint-row', 'data-checkpoint-id': String(cp.id) }, [
    h('td', { class: 'num' }, link(`/jobs/${jobId}/checkpoints/${cp.id}`, String(cp.id),
      { 'data-testid': 'checkpoint-link', title: 'per operator and subtask' })),
    h('td', {}, [stateBadge(cp.status), cp.is_savepoint ? h('span', { class: 'badge' }, 'savepoint') : null]),
    h('td', { class: 'nowrap' }, formatTime(cp.trigger_timestamp)),
    h('td', { class: 'nowrap' }, formatTime(cp.latest_ack_timestamp)),
    h('td', { class: 'num' }, formatDuration(duration(cp) ?? undefined)),
    h('td', { class: 'num' }, formatBytes(cp.state_size)),
    h('td', { class: 'num' }, `${cp.num_acknowledged_subtasks ?? '-'}/${cp.num_subtasks ?? '-'}`),
    h('td', { class: 'wrap' }, cp.failure_message
      ? h('span', { class: 'failure', 'data-testid': 'checkpoint-failure' }, cp.failure_message)
      : h('span', { class: 'mono small' }, cp.external_path || '')),
  ]));
  return table(['Id', 'Status', 'Trigger time', 'Latest acknowledgement', 'Duration', 'State size',
    'Acknowledged', 'Path / failure'], rows, { 'data-testid': 'checkpoint-history', empty: 'No checkpoints yet' });
}

export function create(container, jobId, ctx) {
  const statsBox = h('div', {}, 'Loading checkpoints…');
  const configBox = h('div');
  replace(container, [statsBox, section('Configuration', configBox)]);
  let configLoaded = false;

  return {
    async update() {
      const path = `jobs/${seg(jobId)}/checkpoints`;
      if (!configLoaded) {
        try {
          const config = await getJson(`${path}/config`);
          if (!ctx.alive()) return;
          replace(configBox, configTable(config));
        } catch (err) {
          if (err.status !== 404) throw err;
          replace(configBox, notEnabled(err));
        }
        configLoaded = true;
      }
      let stats;
      try {
        stats = await getJson(path);
      } catch (err) {
        if (err.status !== 404) throw err;
        if (ctx.alive()) replace(statsBox, section('Checkpoints', notEnabled(err)));
        return;
      }
      if (!ctx.alive()) return;
      const history = Array.isArray(stats.history) ? stats.history : [];
      replace(statsBox, [
        section('Counts', counts(stats.counts || {})),
        section('Latest', latest(stats.latest || {})),
        section('Summary', summary(stats.summary || {})),
        section('Duration and size per checkpoint',
          history.length ? charts(history) : h('p', { class: 'muted' }, 'No checkpoints yet')),
        section('History', historyTable(history, jobId)),
      ]);
    },
  };
}
