// Figures written for people. The same figures are in each cell's
// data-value as the API gave them.
import {s} from './dom.js';

// rate writes requests per second: 12.35.
export function rate(v) {
  return (v || 0).toFixed(2);
}

// pct writes a share from 0 to 1 as a percent: 99.50%.
export function pct(v) {
  return ((v ?? 1) * 100).toFixed(2) + '%';
}

// dur writes nanoseconds: 850µs, 12.50ms, 1.25s.
export function dur(ns) {
  ns = ns || 0;
  if (ns === 0) return '0';
  if (ns < 1e6) return Math.round(ns / 1e3) + 'µs';
  if (ns < 1e9) return (ns / 1e6).toFixed(2) + 'ms';
  return (ns / 1e9).toFixed(2) + 's';
}

// clock writes a time of day: 14:03:07.
export function clock(t) {
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 2000) return '-';
  return d.toLocaleTimeString([], {hour12: false});
}

// stamp writes a time with its date: 2026-01-02 14:03:07.
export function stamp(t) {
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 2000) return '-';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// alertValue writes a rule's figure as weft alerts does: a p99 (in
// seconds) as a duration, a rate with at most three decimals.
export function alertValue(metric, v) {
  if (v === null || v === undefined) return 'no data';
  if (metric === 'p99') return dur(v * 1e9);
  if (metric === 'readyInstances') return String(v);
  return String(Math.round(v * 1000) / 1000);
}

// labels writes k=v,k=v.
export function labels(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-';
}

// spark is a sparkline of values (oldest first) as SVG.
export function spark(values, cls, title, width = 120, height = 28) {
  const vs = values || [];
  const svg = s('svg', {class: 'spark ' + (cls || ''), width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title});
  svg.append(s('title', {}, title));
  if (vs.length < 2) return svg;
  const max = Math.max(...vs);
  const min = Math.min(0, ...vs);
  const span = max - min || 1;
  const step = width / (vs.length - 1);
  const pts = vs.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`);
  svg.append(s('polyline', {points: pts.join(' '), fill: 'none'}));
  return svg;
}
