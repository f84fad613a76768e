// Summarises a .heapsnapshot by constructor: count and self size, biggest
// first; with a second snapshot and a user count, the difference per user.
//
//   node bench/lib/heap-summary.mjs after.heapsnapshot [before.heapsnapshot users]
import { readFileSync } from 'node:fs';

function byConstructor(path) {
  const snapshot = JSON.parse(readFileSync(path, 'utf8'));
  const meta = snapshot.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map();
  const nodes = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]];
    let name = type === 'object' || type === 'closure' ? snapshot.strings[nodes[i + nameAt]] : `(${type})`;
    if (type === 'closure') name = `closure ${name}`;
    const entry = out.get(name) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += nodes[i + sizeAt];
    out.set(name, entry);
  }
  return out;
}

const [afterPath, beforePath, usersArg] = process.argv.slice(2);
const after = byConstructor(afterPath);
if (beforePath === undefined) {
  for (const [name, e] of [...after].sort((a, b) => b[1].size - a[1].size).slice(0, 40)) console.log(String(e.size).padStart(10), String(e.count).padStart(8), name);
} else {
  const users = Number(usersArg);
  const before = byConstructor(beforePath);
  const rows = [...after].map(([name, e]) => {
    const b = before.get(name) ?? { count: 0, size: 0 };
    return { name, count: (e.count - b.count) / users, size: (e.size - b.size) / users };
  });
  const total = rows.reduce((sum, r) => sum + r.size, 0);
  console.log(`per user: ${total.toFixed(0)} B of heap objects`);
  for (const r of rows.sort((a, b) => b.size - a.size).slice(0, 40)) if (Math.abs(r.size) >= 1) console.log(r.size.toFixed(1).padStart(8), 'B', r.count.toFixed(2).padStart(7), '×', r.name);
}
