// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went:
// self time and inclusive time per function.
import { readFileSync } from 'node:fs';
import { root } from './util.mjs';

function shortUrl(url) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(root)) u = u.slice(root.length);
  u = u.replace(/^node_modules\/\.pnpm\/[^/]+\/node_modules\//, '');
  return u;
}

/**
 * @returns { totalMs, rows: [{ name, where, selfMs, selfPct, totalMs, totalPct }], byFile: [{ file, selfMs, selfPct }] }
 */
export function analyzeProfile(path) {
  const profile = JSON.parse(readFileSync(path, 'utf8'));
  const nodes = new Map();
  const parent = new Map();
  for (const node of profile.nodes) {
    nodes.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node) => {
    const f = node.callFrame;
    return `${f.functionName || '(anonymous)'}\t${shortUrl(f.url)}:${f.lineNumber + 1}`;
  };
  const self = new Map();
  const inclusive = new Map();
  const byFile = new Map();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    const node = nodes.get(profile.samples[i]);
    if (!node) continue;
    const name = node.callFrame.functionName;
    if (name === '(idle)') {
      idle += delta;
      continue;
    }
    total += delta;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + delta);
    const file = shortUrl(node.callFrame.url) || name;
    byFile.set(file, (byFile.get(file) ?? 0) + delta);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(nodes.get(id));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + delta);
    }
  }
  const rows = [...self.keys(), ...[...inclusive.keys()].filter((k) => !self.has(k))].map((key) => {
    const [name, where] = key.split('\t');
    const s = self.get(key) ?? 0;
    const t = inclusive.get(key) ?? 0;
    return { name, where, selfMs: s, selfPct: (s / total) * 100, totalMs: t, totalPct: (t / total) * 100 };
  });
  return {
    busyMs: total,
    idleMs: idle,
    rows,
    byFile: [...byFile].map(([file, ms]) => ({ file, selfMs: ms, selfPct: (ms / total) * 100 })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

/** A Markdown summary: top functions by self time, by inclusive time (own code only), and by file. */
export function profileMarkdown(title, analysis, { top = 25 } = {}) {
  const lines = [`### ${title}`, '', `busy ${analysis.busyMs.toFixed(0)} ms, idle ${analysis.idleMs.toFixed(0)} ms`, ''];
  lines.push('| self % | self ms | function | where |', '|---:|---:|---|---|');
  for (const r of [...analysis.rows].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
    lines.push(`| ${r.selfPct.toFixed(1)} | ${r.selfMs.toFixed(0)} | \`${r.name}\` | ${r.where} |`);
  }
  lines.push('', 'Inclusive time, functions of packages/ and bench/:', '', '| total % | function | where |', '|---:|---|---|');
  for (const r of [...analysis.rows]
    .filter((r) => r.where.startsWith('packages/') || r.where.startsWith('bench/'))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, top)) {
    lines.push(`| ${r.totalPct.toFixed(1)} | \`${r.name}\` | ${r.where} |`);
  }
  lines.push('', 'Self time by file:', '', '| self % | file |', '|---:|---|');
  for (const f of analysis.byFile.slice(0, 15)) lines.push(`| ${f.selfPct.toFixed(1)} | ${f.file} |`);
  lines.push('');
  return lines.join('\n');
}
