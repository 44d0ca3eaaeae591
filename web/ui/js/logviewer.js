// Log viewer shared by the JobManager and TaskManager pages (FLIP-103): lists every file of
// the log directory, shows one file, reloads, downloads, goes full screen.

import { getJson, getText, seg } from './api.js';
import { showError } from './banner.js';
import { h, replace, table } from './dom.js';
import { formatBytes, formatTime } from './format.js';

const MAX_SHOWN = 1024 * 1024; // larger files are shown from their last MiB (Range request)

/**
 * The main log among `files`: the newest `*.log` file, preferring names that contain `prefer`
 * (a TaskManager's id: its own log in a directory it shares with the JobManager); null if none.
 */
export function mainLog(files, prefer) {
  const logs = files.filter((f) => /\.log$/.test(f.name));
  const own = prefer ? logs.filter((f) => f.name.includes(prefer)) : [];
  const pick = (own.length ? own : logs).sort((a, b) => (b.mtime ?? 0) - (a.mtime ?? 0));
  return pick.length ? pick[0].name : null;
}

/**
 * Mounts a log viewer into `container` for `base` ("jobmanager/logs" or
 * "taskmanagers/<tm>/logs"). Returns {load()} which (re)loads the list and the open file; the
 * first load opens the main log (see mainLog; `prefer` names the TaskManager).
 */
export function logViewer(container, base, prefer) {
  let opened = false;
  let files = [];
  let selected = null;

  const reload = h('button', { type: 'button', 'data-testid': 'log-reload' }, 'Reload');
  const fullscreen = h('button', { type: 'button', 'data-testid': 'log-fullscreen', 'aria-pressed': 'false' },
    'Full screen');
  const listBox = h('div', { class: 'log-files' }, 'Loading log files…');
  const fileName = h('span', { class: 'mono', 'data-testid': 'log-file-name' }, 'No file selected');
  const download = h('a', { class: 'button', 'data-testid': 'log-download', hidden: true }, 'Download');
  const note = h('span', { class: 'muted', 'data-testid': 'log-note' });
  const content = h('pre', { class: 'log-content', 'data-testid': 'log-content', tabindex: '0' });
  const viewer = h('div', { class: 'log-viewer', 'data-testid': 'log-viewer' }, [
    h('div', { class: 'toolbar' }, [fileName, download, note, h('span', { class: 'spacer' }), reload, fullscreen]),
    h('div', { class: 'log-body' }, [listBox, content]),
  ]);
  replace(container, viewer);

  const setFullscreen = (on) => {
    viewer.classList.toggle('fullscreen', on);
    fullscreen.textContent = on ? 'Exit full screen' : 'Full screen';
    fullscreen.setAttribute('aria-pressed', String(on));
  };
  fullscreen.addEventListener('click', () => setFullscreen(!viewer.classList.contains('fullscreen')));
  viewer.addEventListener('keydown', (e) => { if (e.key === 'Escape') setFullscreen(false); });
  reload.addEventListener('click', () => load().catch((err) => showError(err)));

  function renderList() {
    const rows = files.map((file) => h('tr', {
      'data-testid': 'log-file-row',
      'data-name': file.name,
      class: file.name === selected ? 'selected' : '',
    }, [
      h('td', {}, h('button', {
        type: 'button', class: 'linklike mono', 'data-testid': 'log-file-link',
        onclick: () => open(file.name).catch((err) => showError(err)),
      }, file.name)),
      h('td', { class: 'num' }, formatBytes(file.size)),
      h('td', { class: 'nowrap' }, formatTime(file.mtime)),
    ]));
    replace(listBox, table(['File', 'Size', 'Modified'], rows,
      { 'data-testid': 'log-files', empty: 'The log directory is empty' }));
  }

  async function open(name) {
    selected = name;
    renderList();
    const url = `${base}/${seg(name)}`;
    const file = files.find((f) => f.name === name);
    const size = file && typeof file.size === 'number' ? file.size : 0;
    fileName.textContent = name;
    download.href = `${url}?download=true`;
    download.setAttribute('download', name);
    download.hidden = false;
    content.textContent = 'Loading…';
    // Not the previous file's any more (reopening the same file must not look loaded).
    delete content.dataset.file;
    note.textContent = '';
    const range = size > MAX_SHOWN ? [size - MAX_SHOWN, size - 1] : null;
    const { text, partial } = await getText(url, range);
    if (selected !== name) return;
    // a tail read starts mid-line (maybe mid-character): show whole lines only
    content.textContent = partial && text.includes('\n') ? text.slice(text.indexOf('\n') + 1) : text;
    content.dataset.file = name;
    note.textContent = partial
      ? `showing the last ${formatBytes(MAX_SHOWN)} of ${formatBytes(size)}; download for the whole file`
      : (text === '' ? '(empty file)' : '');
  }

  async function load() {
    const answer = await getJson(base);
    files = Array.isArray(answer.logs) ? answer.logs : [];
    if (selected !== null && !files.some((f) => f.name === selected)) {
      selected = null;
      fileName.textContent = 'No file selected';
      download.hidden = true;
      content.textContent = '';
      note.textContent = '';
    }
    if (selected === null && !opened) {
      // A page opens on its main log, as Flink's does.
      selected = mainLog(files, prefer);
    }
    opened = true;
    renderList();
    if (selected !== null) await open(selected);
  }

  return { load };
}
