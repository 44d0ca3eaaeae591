// Small DOM builders. Text always goes in through textContent / text nodes, never innerHTML,
// so strings that come from the API cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children: nodes, strings (as text), numbers, arrays of those; skips null/false. */
export function append(el, children) {
  if (children === undefined || children === null || children === false) return el;
  if (Array.isArray(children)) {
    for (const child of children) append(el, child);
  } else if (children instanceof Node) {
    el.appendChild(children);
  } else {
    el.appendChild(document.createTextNode(String(children)));
  }
  return el;
}

/** h('div', {class: 'x', 'data-testid': 'y'}, ['text', h('b', {}, 'bold')]) */
export function h(tag, attrs, children) {
  return apply(document.createElement(tag), attrs, children);
}

/** Same as h() for SVG elements. */
export function s(tag, attrs, children) {
  return apply(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces every child of el with the given children. */
export function replace(el, children) {
  el.replaceChildren();
  return append(el, children);
}

/** A table with a header row; rows are arrays of cells (nodes or text) or <tr> elements. */
export function table(headers, rows, attrs = {}) {
  const head = h('thead', {}, h('tr', {}, headers.map((name) => h('th', {}, name))));
  const body = h('tbody', {}, rows.map((row) =>
    row instanceof Node ? row : h('tr', {}, row.map((cell) => h('td', {}, cell)))));
  if (rows.length === 0) {
    body.appendChild(h('tr', { class: 'empty' },
      h('td', { colspan: headers.length }, attrs.empty || 'Nothing to show')));
  }
  const tableAttrs = { ...attrs, class: ['table', attrs.class].filter(Boolean).join(' ') };
  delete tableAttrs.empty;
  return h('table', tableAttrs, [head, body]);
}

/** A key/value table from [[label, value], ...]. */
export function kvTable(pairs, attrs = {}) {
  return h('table', { ...attrs, class: ['table', 'kv', attrs.class].filter(Boolean).join(' ') },
    h('tbody', {}, pairs.map(([key, value]) => h('tr', {}, [h('th', {}, key), h('td', {}, value)]))));
}

/** A link to an in-app route ("#/jobs/<id>"). */
export function link(route, text, attrs = {}) {
  return h('a', { ...attrs, href: '#' + route }, text);
}

/** A coloured state label (RUNNING, FAILED, ...). */
export function stateBadge(state, attrs = {}) {
  const value = String(state ?? 'UNKNOWN');
  return h('span', { ...attrs, class: `badge state state-${value.toLowerCase()}` }, value);
}

/** A section with a title. */
export function section(title, children, attrs = {}) {
  return h('section', { ...attrs, class: ['card', attrs.class].filter(Boolean).join(' ') },
    [title ? h('h2', {}, title) : null, children]);
}

/** Tabs as links: [{route, label, active, testid}]. */
export function tabs(items) {
  return h('nav', { class: 'tabs' }, items.map((item) =>
    h('a', {
      href: '#' + item.route,
      class: item.active ? 'tab active' : 'tab',
      'data-testid': item.testid,
    }, item.label)));
}
