// An SVG chart of a run: closed-loop throughput and p99 latency by
// concurrency, one line per target. No dependencies.
import { summarize } from './report.mjs';

const COLORS = { 'baseline-direct': '#7f7f7f', 'baseline-relay': '#1f77b4', imi: '#d62728' };
const W = 1010;
const H = 380;
const PANEL_W = 400;
const PANEL_H = 250;
const TOP = 60;

function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function panel({ x0, title, conns, series, yLabel, log }) {
  const parts = [];
  const values = series.flatMap((s) => s.points.map((p) => p.y)).filter((v) => v > 0);
  let yMin = 0;
  let yMax = niceMax(Math.max(...values, 1) * 1.05);
  if (log) {
    yMin = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
    yMax = 10 ** Math.ceil(Math.log10(Math.max(...values, 1)));
    if (yMax <= yMin) yMax = yMin * 10;
  }
  const xOf = (i) => x0 + (conns.length === 1 ? PANEL_W / 2 : (i / (conns.length - 1)) * PANEL_W);
  const yOf = (v) => {
    const f = log ? (Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)) : (v - yMin) / (yMax - yMin);
    return TOP + PANEL_H - f * PANEL_H;
  };
  parts.push(`<text x="${x0 + PANEL_W / 2}" y="${TOP - 18}" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`);
  parts.push(`<rect x="${x0}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#ccc"/>`);
  // y grid and labels
  const ticks = [];
  if (log) for (let v = yMin; v <= yMax * 1.0001; v *= 10) ticks.push(v);
  else for (let i = 0; i <= 5; i++) ticks.push(yMin + ((yMax - yMin) * i) / 5);
  for (const v of ticks) {
    const y = yOf(v);
    parts.push(`<line x1="${x0}" y1="${y}" x2="${x0 + PANEL_W}" y2="${y}" stroke="#eee"/>`);
    const label = v >= 1000 ? `${(v / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })}k` : v < 1 ? String(Number(v.toPrecision(2))) : String(Math.round(v));
    parts.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11">${label}</text>`);
  }
  parts.push(`<text x="${x0 - 48}" y="${TOP + PANEL_H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 - 48} ${TOP + PANEL_H / 2})">${escape(yLabel)}</text>`);
  conns.forEach((c, i) => {
    parts.push(`<text x="${xOf(i)}" y="${TOP + PANEL_H + 18}" text-anchor="middle" font-size="11">${c}</text>`);
  });
  parts.push(`<text x="${x0 + PANEL_W / 2}" y="${TOP + PANEL_H + 38}" text-anchor="middle" font-size="12">concurrent users (log scale)</text>`);
  for (const s of series) {
    const pts = s.points.filter((p) => p.y > 0).map((p) => `${xOf(conns.indexOf(p.conns)).toFixed(1)},${yOf(p.y).toFixed(1)}`);
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${COLORS[s.target]}" stroke-width="2.5" points="${pts.join(' ')}"/>`);
    for (const p of pts) {
      const [px, py] = p.split(',');
      parts.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${COLORS[s.target]}"/>`);
    }
  }
  return parts.join('\n');
}

/** @returns the SVG text */
export function renderChart(results) {
  const s = results.summary ?? summarize(results);
  const conns = [...new Set(s.closed.map((c) => c.conns))].sort((a, b) => a - b);
  const targets = ['baseline-direct', 'baseline-relay', 'imi'].filter((t) => s.closed.some((c) => c.target === t));
  const seriesOf = (key) => targets.map((target) => ({ target, points: s.closed.filter((c) => c.target === target).map((c) => ({ conns: c.conns, y: c[key] })) }));
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(panel({ x0: 80, title: 'Round trips per second (median)', conns, series: seriesOf('throughput'), yLabel: 'round trips / s' }));
  parts.push(panel({ x0: 80 + PANEL_W + 100, title: 'p99 latency (median of runs)', conns, series: seriesOf('p99'), yLabel: 'ms (log scale)', log: true }));
  let lx = 80;
  for (const target of targets) {
    parts.push(`<rect x="${lx}" y="${H - 22}" width="14" height="4" fill="${COLORS[target]}"/>`);
    parts.push(`<text x="${lx + 20}" y="${H - 16}" font-size="12">${target}</text>`);
    lx += 160;
  }
  const m = results.machine;
  parts.push(`<text x="${W - 10}" y="${H - 16}" text-anchor="end" font-size="11" fill="#666">${escape(`${m.cpuModel}, ${m.cores} cores, Node ${m.node}, ${results.startedAt.slice(0, 10)}`)}</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
