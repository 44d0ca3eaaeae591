// The error banner at the top of every page. Errors stay until dismissed; the same message
// repeated (e.g. on every auto refresh) is shown once with a counter.

import { h, replace } from './dom.js';

const shown = new Map(); // message -> {count, item}

function banner() {
  return document.getElementById('error-banner');
}

function render() {
  const el = banner();
  if (shown.size === 0) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  const items = [...shown.entries()].map(([message, entry]) =>
    h('li', { 'data-testid': 'error-message' }, [
      message,
      entry.count > 1 ? h('span', { class: 'count' }, ` (×${entry.count})`) : null,
    ]));
  replace(el, [
    h('button', { type: 'button', class: 'dismiss', 'data-testid': 'error-dismiss', onclick: clearErrors,
      title: 'Dismiss' }, '×'),
    h('strong', {}, 'Error'),
    h('ul', {}, items),
  ]);
  el.hidden = false;
}

/** Shows an error (ApiError, Error or string) in the banner; `context` says what failed. */
export function showError(err, context) {
  if (err instanceof AggregateError) {
    for (const inner of err.errors) showError(inner, context);
    return;
  }
  const messages = err && Array.isArray(err.messages) ? err.messages : [String(err && err.message || err)];
  const where = context || (err && err.path ? `GET ${err.path}` : '');
  const status = err && err.status ? ` [${err.status}]` : '';
  for (const msg of messages) {
    const text = `${where ? where + status + ': ' : ''}${msg}`;
    const entry = shown.get(text) || { count: 0 };
    entry.count += 1;
    shown.set(text, entry);
  }
  render();
}

export function clearErrors() {
  shown.clear();
  render();
}
