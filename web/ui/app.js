// riffle web UI: hash router and auto refresh. Each page module exports
// mount(root, params, ctx) -> {refresh?(), dispose?()}; refresh() is called right away and
// then every `refresh-interval` ms (from GET config) while the page is shown.

import { getJson } from './js/api.js';
import { clearErrors, showError } from './js/banner.js';
import { h, replace } from './js/dom.js';
import * as overview from './js/overview.js';
import * as jobs from './js/jobs.js';
import * as job from './js/job.js';
import * as vertex from './js/vertex.js';
import * as checkpoint from './js/checkpoint.js';
import * as taskmanagers from './js/taskmanagers.js';
import * as jobmanager from './js/jobmanager.js';
import * as submit from './js/submit.js';

const DEFAULT_REFRESH_MS = 3000;

// [pattern, page module, nav section, params builder]
const ROUTES = [
  [/^\/?$/, overview, 'overview', () => ({})],
  [/^\/overview$/, overview, 'overview', () => ({})],
  [/^\/jobs$/, jobs, 'jobs', () => ({})],
  [/^\/jobs\/([^/]+)$/, job, 'jobs', (m) => ({ id: m[1], tab: 'overview' })],
  [/^\/jobs\/([^/]+)\/(checkpoints|exceptions)$/, job, 'jobs', (m) => ({ id: m[1], tab: m[2] })],
  [/^\/jobs\/([^/]+)\/vertices\/([^/]+)$/, vertex, 'jobs', (m) => ({ id: m[1], vid: m[2] })],
  [/^\/jobs\/([^/]+)\/checkpoints\/(\d+)$/, checkpoint, 'jobs', (m) => ({ id: m[1], cid: m[2] })],
  [/^\/taskmanagers$/, taskmanagers, 'taskmanagers', () => ({})],
  [/^\/taskmanagers\/([^/]+)$/, taskmanagers, 'taskmanagers', (m) => ({ tm: m[1], tab: 'overview' })],
  [/^\/taskmanagers\/([^/]+)\/(logs|thread-dump)$/, taskmanagers, 'taskmanagers',
    (m) => ({ tm: m[1], tab: m[2] })],
  [/^\/jobmanager$/, jobmanager, 'jobmanager', () => ({ tab: 'config' })],
  [/^\/jobmanager\/(config|logs|thread-dump|metrics)$/, jobmanager, 'jobmanager', (m) => ({ tab: m[1] })],
  [/^\/submit$/, submit, 'submit', () => ({})],
];

const state = {
  config: { 'refresh-interval': DEFAULT_REFRESH_MS, features: { 'web-submit': true } },
  page: null,
  generation: 0,
  refreshing: false,
  timer: null,
};

function decodeParams(params) {
  const out = {};
  for (const [key, value] of Object.entries(params)) {
    try {
      out[key] = decodeURIComponent(value);
    } catch (_) {
      out[key] = value;
    }
  }
  return out;
}

function resolve(path) {
  for (const [pattern, module, nav, params] of ROUTES) {
    const match = pattern.exec(path);
    if (match) return { module, nav, params: decodeParams(params(match)) };
  }
  return null;
}

async function refreshPage() {
  const page = state.page;
  if (!page || !page.refresh || state.refreshing || document.hidden) return;
  const generation = state.generation;
  state.refreshing = true;
  try {
    await page.refresh();
  } catch (err) {
    if (generation === state.generation) showError(err);
  } finally {
    state.refreshing = false;
  }
}

function route() {
  const path = (location.hash || '#/overview').slice(1).split('?')[0];
  const root = document.getElementById('content');

  if (state.page && state.page.dispose) state.page.dispose();
  state.page = null;
  // An error belongs to the page it happened on.
  clearErrors();
  state.generation += 1;
  state.refreshing = false;
  const generation = state.generation;

  const target = resolve(path);
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', target !== null && a.dataset.nav === target.nav);
  }
  if (!target) {
    replace(root, h('section', { class: 'card', 'data-testid': 'not-found' }, [
      h('h2', {}, 'Page not found'),
      h('p', {}, `No page at "${path}".`),
      h('a', { href: '#/overview' }, 'Go to the overview'),
    ]));
    return;
  }

  root.replaceChildren();
  const ctx = {
    config: state.config,
    /** false once the user has left this page: late answers must then be dropped. */
    alive: () => generation === state.generation,
    navigate: (hash) => { location.hash = hash; },
  };
  try {
    state.page = target.module.mount(root, target.params, ctx) || {};
  } catch (err) {
    showError(err, 'Rendering the page');
    return;
  }
  refreshPage();
}

function startTimer() {
  clearInterval(state.timer);
  const interval = Number(state.config['refresh-interval']) > 0
    ? Math.max(500, Number(state.config['refresh-interval']))
    : DEFAULT_REFRESH_MS;
  state.timer = setInterval(refreshPage, interval);
  document.getElementById('refresh-info').textContent = `auto refresh every ${interval / 1000}s`;
}

async function start() {
  try {
    const config = await getJson('config');
    Object.assign(state.config, config);
    const version = document.getElementById('version');
    version.textContent = `riffle ${config['riffle-version'] || ''} · Flink API ${config['flink-version'] || ''}`;
    if (config.features && config.features['web-submit'] === false) {
      document.querySelector('#nav a[data-nav="submit"]').hidden = true;
    }
  } catch (err) {
    showError(err);
  }
  startTimer();
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshPage(); });
  route();
}

start();
