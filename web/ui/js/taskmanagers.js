// TaskManagers list (#/taskmanagers) and one TaskManager (#/taskmanagers/<tm>[/logs|/thread-dump]).

import { getJson, seg } from './api.js';
import { h, kvTable, link, replace, section, table, tabs } from './dom.js';
import { formatBytes, formatCount, formatTime, formatValue } from './format.js';
import { logViewer } from './logviewer.js';
import { threadDump } from './threaddump.js';
import { loadMetrics, metricsTable } from './process-metrics.js';

const RESOURCE_KEYS = ['cpuCores', 'taskHeapMemory', 'taskOffHeapMemory', 'managedMemory', 'networkMemory'];
const MEMORY_KEYS = ['frameworkHeap', 'taskHeap', 'frameworkOffHeap', 'taskOffHeap', 'networkMemory',
  'managedMemory', 'jvmMetaspace', 'jvmOverhead', 'totalFlinkMemory', 'totalProcessMemory'];
const MEMORY_POOLS = ['heap', 'nonHeap', 'direct', 'mapped']; // metrics <pool>Used, ...Committed, ...Max, ...Count

function tmRoute(id) {
  return `/taskmanagers/${seg(id)}`;
}

function listPage(root, ctx) {
  const body = h('div');
  replace(root, [h('h1', {}, 'Task Managers'), body]);
  return {
    async refresh() {
      const answer = await getJson('taskmanagers');
      if (!ctx.alive()) return;
      const tms = Array.isArray(answer.taskmanagers) ? answer.taskmanagers : [];
      const rows = tms.map((tm) => h('tr', { 'data-testid': 'tm-row', 'data-tm-id': tm.id }, [
        h('td', {}, link(tmRoute(tm.id), tm.id, { class: 'mono', 'data-testid': 'tm-link' })),
        h('td', { class: 'mono small' }, formatValue(tm.path)),
        h('td', { class: 'num' }, formatValue(tm.dataPort)),
        h('td', { class: 'nowrap' }, formatTime(tm.timeSinceLastHeartbeat)),
        h('td', { class: 'num' }, formatValue(tm.slotsNumber)),
        h('td', { class: 'num' }, formatValue(tm.freeSlots)),
        h('td', { class: 'num' }, formatValue(tm.hardware && tm.hardware.cpuCores)),
        h('td', { class: 'num' }, formatBytes(tm.hardware && tm.hardware.physicalMemory)),
      ]));
      replace(body, section(`Task Managers (${tms.length})`, table(['Id', 'Path', 'Data port', 'Last heartbeat',
        'Slots', 'Free slots', 'CPU cores', 'Physical memory'], rows,
      { 'data-testid': 'tm-table', empty: 'No TaskManager is registered' })));
    },
  };
}

function resources(tm) {
  const total = tm.totalResource || {};
  const free = tm.freeResource || {};
  const extended = new Set([...Object.keys(total.extendedResources || {}),
    ...Object.keys(free.extendedResources || {})]);
  const rows = RESOURCE_KEYS.map((key) => [key, formatValue(total[key]), formatValue(free[key])]);
  for (const name of extended) {
    rows.push([`extended: ${name}`, formatValue((total.extendedResources || {})[name]),
      formatValue((free.extendedResources || {})[name])]);
  }
  return table(['Resource', 'Total', 'Free'], rows, { 'data-testid': 'tm-resources' });
}

function overviewTab(container, tmId, ctx) {
  return {
    async refresh() {
      const tm = await getJson(`taskmanagers/${seg(tmId)}`);
      if (!ctx.alive()) return;
      const processMetrics = await loadMetrics(`taskmanagers/${seg(tmId)}/metrics`);
      if (!ctx.alive()) return;
      const hw = tm.hardware || {};
      const mem = tm.memoryConfiguration || {};
      const metrics = tm.metrics || {};
      const gcs = Array.isArray(tm.garbageCollectors) ? tm.garbageCollectors : [];
      // riffle leaves out what it does not have (JVM pools, Flink's memory budgets): show what came
      const memKeys = [...MEMORY_KEYS, 'stateBackendMemoryBudget'].filter((key) => typeof mem[key] === 'number');
      const pools = MEMORY_POOLS.filter((pool) => typeof metrics[`${pool}Used`] === 'number');
      replace(container, [
        section('Slots', h('div', { class: 'stats' }, [
          h('div', { class: 'stat' }, [h('div', { class: 'stat-value', 'data-testid': 'tm-slots' },
            formatValue(tm.slotsNumber)), h('div', { class: 'stat-label' }, 'Slots')]),
          h('div', { class: 'stat' }, [h('div', { class: 'stat-value', 'data-testid': 'tm-free-slots' },
            formatValue(tm.freeSlots)), h('div', { class: 'stat-label' }, 'Free slots')]),
        ])),
        section('Details', kvTable([
          ['Id', h('span', { class: 'mono', 'data-testid': 'tm-id' }, tm.id)],
          ['Path', h('span', { class: 'mono' }, formatValue(tm.path))],
          ['Data port', formatValue(tm.dataPort)],
          ['Last heartbeat', formatTime(tm.timeSinceLastHeartbeat)],
          ['CPU cores', formatValue(hw.cpuCores)],
          ['Physical memory', formatBytes(hw.physicalMemory)],
          ['Free memory', formatBytes(hw.freeMemory)],
          ...(typeof hw.managedMemory === 'number' ? [['Managed memory', formatBytes(hw.managedMemory)]] : []),
          ...(typeof metrics.residentMemory === 'number'
            ? [['Resident memory', h('span', { 'data-testid': 'tm-rss' }, formatBytes(metrics.residentMemory))]] : []),
        ])),
        section('Process (measured where it runs)', metricsTable(processMetrics, 'tm-process-metrics')),
        section('Resources', resources(tm)),
        section('Memory configuration', kvTable(memKeys.map((key) => [key, formatBytes(mem[key])]),
          { 'data-testid': 'tm-memory' })),
        ...(pools.length ? [section('Memory metrics', table(['Pool', 'Used', 'Committed', 'Max', 'Buffers'],
          pools.map((pool) => [pool, formatBytes(metrics[`${pool}Used`]),
            formatBytes(metrics[`${pool}Committed`]), formatBytes(metrics[`${pool}Max`]),
            formatCount(metrics[`${pool}Count`])])))] : []),
        section('Network memory segments', kvTable([
          ['Available', formatCount(metrics.memorySegmentsAvailable)],
          ['Total', formatCount(metrics.memorySegmentsTotal)],
        ])),
        section('Garbage collectors', table(['Name', 'Count', 'Time'],
          gcs.map((gc) => [formatValue(gc.name), formatCount(gc.count), `${formatCount(gc.time)} ms`]),
          { empty: 'None reported' })),
      ]);
    },
  };
}

function detailPage(root, params, ctx) {
  const tmId = params.tm;
  const base = tmRoute(tmId);
  const container = h('div', { 'data-testid': `tm-tab-${params.tab}` });
  replace(root, [
    h('h1', {}, ['Task Manager ', h('span', { class: 'mono', 'data-testid': 'tm-title' }, tmId)]),
    tabs([
      { route: base, label: 'Metrics', active: params.tab === 'overview', testid: 'tab-tm-overview' },
      { route: `${base}/logs`, label: 'Logs', active: params.tab === 'logs', testid: 'tab-tm-logs' },
      { route: `${base}/thread-dump`, label: 'Thread dump', active: params.tab === 'thread-dump',
        testid: 'tab-tm-thread-dump' },
    ]),
    container,
  ]);
  if (params.tab === 'overview') return overviewTab(container, tmId, ctx);
  const view = params.tab === 'logs'
    ? logViewer(container, `taskmanagers/${seg(tmId)}/logs`, tmId)
    : threadDump(container, `taskmanagers/${seg(tmId)}/thread-dump`);
  let loaded = false;
  return {
    // logs and thread dumps are snapshots: loaded once, then on the Reload button
    async refresh() {
      if (loaded) return;
      loaded = true;
      await view.load();
    },
  };
}

export function mount(root, params, ctx) {
  return params.tm === undefined ? listPage(root, ctx) : detailPage(root, params, ctx);
}
