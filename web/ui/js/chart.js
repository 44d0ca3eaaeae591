// A minimal SVG bar chart (no library).

import { s } from './dom.js';

const HEIGHT = 170;
const TOP = 14;
const BOTTOM = 28;
const LEFT = 70;
const RIGHT = 10;

/**
 * bars: [{label, value, cls, tip}]; format(value) -> axis/tooltip text.
 * Returns an <svg> with one <rect data-testid="chart-bar"> per bar.
 */
export function barChart({ title, bars, format, testid }) {
  const slot = Math.max(14, Math.min(48, Math.floor(720 / Math.max(1, bars.length))));
  const width = LEFT + RIGHT + slot * Math.max(1, bars.length);
  const plotH = HEIGHT - TOP - BOTTOM;
  const max = Math.max(0, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const scale = max > 0 ? plotH / max : 0;
  const labelEvery = Math.ceil(bars.length / Math.floor(720 / 48));

  const grid = [0, 0.5, 1].map((f) => {
    const y = TOP + plotH - f * plotH;
    return s('g', { class: 'grid' }, [
      s('line', { x1: LEFT, x2: width - RIGHT, y1: y, y2: y }),
      s('text', { x: LEFT - 6, y: y + 4, 'text-anchor': 'end' }, format(max * f)),
    ]);
  });

  const barEls = bars.map((bar, i) => {
    const value = Number.isFinite(bar.value) ? bar.value : 0;
    const barH = Math.max(value > 0 ? 1 : 0, value * scale);
    const x = LEFT + i * slot;
    return s('g', { class: 'bar-group' }, [
      s('rect', {
        class: `bar ${bar.cls || ''}`,
        x: x + slot * 0.15, y: TOP + plotH - barH, width: slot * 0.7, height: barH,
        'data-testid': 'chart-bar',
        'data-label': bar.label,
      }, s('title', {}, `${bar.label}: ${bar.tip ?? format(value)}`)),
      i % labelEvery === 0
        ? s('text', { class: 'bar-label', x: x + slot / 2, y: HEIGHT - BOTTOM + 16, 'text-anchor': 'middle' }, bar.label)
        : null,
    ]);
  });

  return s('svg', {
    class: 'bar-chart', width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`,
    role: 'img', 'aria-label': title, 'data-testid': testid,
  }, [s('text', { class: 'chart-title', x: LEFT, y: 10 }, title), ...grid, ...barEls]);
}
