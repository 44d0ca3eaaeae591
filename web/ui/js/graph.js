// The job graph as SVG: one box per vertex, laid out by topological depth (sources on the
// left), arrows for the plan's edges labelled with their ship strategy.

import { s } from './dom.js';
import { formatPercent, formatRate } from './format.js';

const BOX_W = 230;
const BOX_H = 92;
const COL_GAP = 110;
const ROW_GAP = 28;
const MARGIN = 20;

/** Edges [{from, to, label}] from plan nodes (`inputs[].id` is the upstream vertex). */
export function planEdges(nodes) {
  const edges = [];
  for (const node of nodes || []) {
    for (const input of node.inputs || []) {
      edges.push({ from: input.id, to: node.id, label: input.ship_strategy || '' });
    }
  }
  return edges;
}

/** Longest-path depth of every vertex from the sources (cycles are cut). */
function depths(ids, edges) {
  const upstream = new Map(ids.map((id) => [id, []]));
  for (const edge of edges) upstream.get(edge.to).push(edge.from);
  const depth = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    let d = 0;
    for (const up of upstream.get(id)) d = Math.max(d, visit(up) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  ids.forEach(visit);
  // pull sources right, next to their first consumer (a side input then sits beside the
  // vertex it feeds instead of in the first column)
  const downstream = new Map(ids.map((id) => [id, []]));
  for (const edge of edges) downstream.get(edge.from).push(edge.to);
  for (const id of ids) {
    if (upstream.get(id).length > 0 || downstream.get(id).length === 0) continue;
    const first = Math.min(...downstream.get(id).map((d) => depth.get(d)));
    if (first - 1 > depth.get(id)) depth.set(id, first - 1);
  }
  return { depth, upstream };
}

/** Positions {id -> {x, y}} and the canvas size. */
function layout(ids, edges) {
  const { depth, upstream } = depths(ids, edges);
  const columns = [];
  for (const id of ids) {
    const d = depth.get(id);
    (columns[d] = columns[d] || []).push(id);
  }
  const row = new Map();
  columns.forEach((column, c) => {
    if (!column) return;
    if (c > 0) {
      // order by the mean row of the upstream vertices: fewer crossing arrows
      const key = (id) => {
        const ups = upstream.get(id).filter((u) => row.has(u));
        return ups.length ? ups.reduce((sum, u) => sum + row.get(u), 0) / ups.length : Infinity;
      };
      column.sort((a, b) => key(a) - key(b));
    }
    column.forEach((id, r) => row.set(id, r));
  });
  const tallest = Math.max(1, ...columns.map((column) => (column ? column.length : 0)));
  const height = MARGIN * 2 + tallest * BOX_H + (tallest - 1) * ROW_GAP;
  const pos = new Map();
  columns.forEach((column, c) => {
    if (!column) return;
    const columnHeight = column.length * BOX_H + (column.length - 1) * ROW_GAP;
    const top = (height - columnHeight) / 2;
    column.forEach((id, r) => pos.set(id, {
      x: MARGIN + c * (BOX_W + COL_GAP),
      y: top + r * (BOX_H + ROW_GAP),
    }));
  });
  const width = MARGIN * 2 + columns.length * BOX_W + Math.max(0, columns.length - 1) * COL_GAP;
  return { pos, width, height };
}

function truncate(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function edgePath(from, to) {
  const x1 = from.x + BOX_W;
  const y1 = from.y + BOX_H / 2;
  const x2 = to.x;
  const y2 = to.y + BOX_H / 2;
  if (x2 > x1) {
    const dx = (x2 - x1) / 2;
    return { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, mx: (x1 + x2) / 2, my: (y1 + y2) / 2 };
  }
  // backwards edge (a cycle): loop below the boxes
  const low = Math.max(from.y, to.y) + BOX_H + ROW_GAP / 2;
  return {
    d: `M${x1},${y1} C${x1 + 60},${low} ${x2 - 60},${low} ${x2},${y2}`,
    mx: (x1 + x2) / 2,
    my: low,
  };
}

function vertexBox(vertex, p, rate) {
  const level = vertex['backpressure-level'] || 'ok';
  const ratio = vertex['backpressured-ratio'];
  const name = String(vertex.name ?? vertex.id);
  return s('g', {
    class: `vertex bp-${level}`,
    transform: `translate(${p.x},${p.y})`,
    'data-testid': 'graph-vertex',
    'data-vertex-id': vertex.id,
  }, [
    s('title', {}, `${name}\n${vertex.id}`),
    s('rect', { class: 'vertex-box', width: BOX_W, height: BOX_H, rx: 4 }),
    s('rect', { class: 'vertex-bp-bar', width: 6, height: BOX_H, rx: 2 }),
    s('text', { class: 'vertex-name', x: 14, y: 20 }, truncate(name, 30)),
    s('text', { class: 'vertex-line', x: 14, y: 39 }, [
      `Parallelism ${vertex.parallelism ?? '-'} · `,
      s('tspan', { class: `vertex-status state-${String(vertex.status).toLowerCase()}` },
        String(vertex.status ?? '-')),
    ]),
    s('text', { class: 'vertex-line', x: 14, y: 58, 'data-testid': 'vertex-rate' },
      rate === null ? '- records/s' : `${formatRate(rate.value)} records/s ${rate.dir}`),
    s('text', { class: `vertex-line bp-text bp-${level}`, x: 14, y: 77, 'data-testid': 'vertex-backpressure' },
      `Backpressure: ${level}${typeof ratio === 'number' ? ` (${formatPercent(ratio)})` : ''}`),
  ]);
}

/**
 * The graph as an <svg>. `rates` maps vertex id -> {value, dir} or null (not known yet).
 */
export function renderGraph(vertices, planNodes, rates) {
  const ids = vertices.map((v) => v.id);
  const known = new Set(ids);
  const edges = planEdges(planNodes).filter((e) => known.has(e.from) && known.has(e.to));
  const { pos, width, height } = layout(ids, edges);

  const defs = s('defs', {}, s('marker', {
    id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
    markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow-head' })));

  const edgeEls = edges.map((edge) => {
    const { d, mx, my } = edgePath(pos.get(edge.from), pos.get(edge.to));
    return s('g', { class: 'edge', 'data-testid': 'graph-edge', 'data-from': edge.from, 'data-to': edge.to }, [
      s('path', { d, 'marker-end': 'url(#arrow)' }),
      edge.label ? s('text', { x: mx, y: my - 6, 'text-anchor': 'middle', class: 'edge-label' }, edge.label) : null,
    ]);
  });
  const boxes = vertices.map((v) => vertexBox(v, pos.get(v.id), rates.get(v.id) ?? null));

  return s('svg', {
    class: 'job-graph',
    'data-testid': 'job-graph',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': 'Job graph',
  }, [defs, ...edgeEls, ...boxes]);
}
