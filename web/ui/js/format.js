// Formatting of times, durations, sizes and counts for display.

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

/** Epoch milliseconds as local "YYYY-MM-DD HH:MM:SS"; "-" for -1, 0 or missing. */
export function formatTime(ms) {
  if (typeof ms !== 'number' || ms <= 0) return '-';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Milliseconds as "1d 2h 3m 4s", "5s", "120ms"; "-" when unknown. */
export function formatDuration(ms) {
  if (typeof ms !== 'number' || ms < 0 || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let seconds = Math.floor(ms / 1000);
  const days = Math.floor(seconds / 86400); seconds %= 86400;
  const hours = Math.floor(seconds / 3600); seconds %= 3600;
  const minutes = Math.floor(seconds / 60); seconds %= 60;
  const parts = [];
  if (days) parts.push(`${days}d`);
  if (hours) parts.push(`${hours}h`);
  if (minutes) parts.push(`${minutes}m`);
  if (seconds || parts.length === 0) parts.push(`${seconds}s`);
  return parts.slice(0, 3).join(' ');
}

/** Bytes as "1.5 KiB" etc.; "-" when unknown. */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || bytes < 0 || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value}\u00a0B` : `${value.toFixed(value < 10 ? 2 : 1)}\u00a0${units[unit]}`;
}

/** Integer counts with thousands separators. */
export function formatCount(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  return Math.round(n).toLocaleString('en-US');
}

/** A rate (per second) with one decimal below 100. */
export function formatRate(perSecond) {
  if (typeof perSecond !== 'number' || !Number.isFinite(perSecond)) return '-';
  return perSecond < 100 ? perSecond.toFixed(1) : formatCount(perSecond);
}

/** A 0..1 ratio as a percentage. */
export function formatPercent(ratio) {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio)) return '-';
  return `${Math.round(ratio * 100)}%`;
}

/** Any JSON value as display text. */
export function formatValue(value) {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// SUSPENDED: ended on this JobManager (it lost its leadership); the job goes on under the next.
export const TERMINAL_JOB_STATES = new Set(['FINISHED', 'CANCELED', 'FAILED', 'SUSPENDED']);

export function isTerminal(state) {
  return TERMINAL_JOB_STATES.has(state);
}
