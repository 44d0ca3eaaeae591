// JobManager page (#/jobmanager[/config|/logs|/thread-dump|/metrics]).

import { getJson } from './api.js';
import { h, replace, table, tabs } from './dom.js';
import { logViewer } from './logviewer.js';
import { threadDump } from './threaddump.js';
import { loadMetrics, metricsTable } from './process-metrics.js';

function metricsView(container, ctx) {
  replace(container, h('div', {}, 'Loading metrics…'));
  return {
    async load() {
      const metrics = await loadMetrics('jobmanager/metrics');
      if (!ctx.alive()) return;
      replace(container, metricsTable(metrics, 'jm-metrics'));
    },
  };
}

function configView(container) {
  const filter = h('input', { type: 'search', placeholder: 'Filter keys and values', 'data-testid': 'config-filter',
    'aria-label': 'Filter configuration' });
  const body = h('div', {}, 'Loading the configuration…');
  replace(container, [h('div', { class: 'toolbar' }, [filter]), body]);
  let entries = [];

  const render = () => {
    const needle = filter.value.trim().toLowerCase();
    const shown = entries.filter((e) => needle === ''
      || String(e.key).toLowerCase().includes(needle) || String(e.value).toLowerCase().includes(needle));
    replace(body, table(['Key', 'Value'], shown.map((e) => h('tr', { 'data-testid': 'config-row', 'data-key': e.key }, [
      h('td', { class: 'mono' }, String(e.key)),
      h('td', { class: 'mono wrap' }, String(e.value)),
    ])), { 'data-testid': 'config-table', empty: 'No configuration entries' }));
  };
  filter.addEventListener('input', render);

  return {
    async load() {
      const answer = await getJson('jobmanager/config');
      entries = Array.isArray(answer) ? [...answer].sort((a, b) => String(a.key).localeCompare(String(b.key))) : [];
      render();
    },
  };
}

export function mount(root, params, ctx) {
  const container = h('div', { 'data-testid': `jm-tab-${params.tab}` });
  replace(root, [
    h('h1', {}, 'Job Manager'),
    tabs([
      { route: '/jobmanager/config', label: 'Configuration', active: params.tab === 'config', testid: 'tab-jm-config' },
      { route: '/jobmanager/logs', label: 'Logs', active: params.tab === 'logs', testid: 'tab-jm-logs' },
      { route: '/jobmanager/thread-dump', label: 'Thread dump', active: params.tab === 'thread-dump',
        testid: 'tab-jm-thread-dump' },
      { route: '/jobmanager/metrics', label: 'Metrics', active: params.tab === 'metrics', testid: 'tab-jm-metrics' },
    ]),
    container,
  ]);
  if (params.tab === 'metrics') {
    // live figures: read again at every refresh
    const view = metricsView(container, ctx);
    return { refresh: () => view.load() };
  }
  const view = params.tab === 'config' ? configView(container)
    : params.tab === 'logs' ? logViewer(container, 'jobmanager/logs')
      : threadDump(container, 'jobmanager/thread-dump');
  let loaded = false;
  return {
    // configuration, logs and thread dumps are loaded once (logs and dumps have Reload buttons)
    async refresh() {
      if (loaded) return;
      loaded = true;
      await view.load();
    },
  };
}
