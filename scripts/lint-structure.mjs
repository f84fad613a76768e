// `pnpm lint:structure`: the shape rules of docs/architecture.md, checked.
//
// For every package's src/ it prints the number of import circles among its
// source files and the number of source files over MAX_LINES lines, then the
// offenders. Exits 1 on any circle or any file over the limit.
//
// Every import counts as an edge, type-only ones too: a circle through types
// still means two files that cannot be understood one without the other.
// Imports are read with TypeScript's own pre-processor (the same scanner tsc
// uses), so `import type`, `export … from` and `import()` are all seen.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export const root = fileURLToPath(new URL('..', import.meta.url));
/** A source file longer than this is a sign it holds more than one job. */
export const MAX_LINES = 500;

function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Resolves a relative specifier as NodeNext does for our sources (`./x.js` → `./x.ts`). */
function resolveLocal(from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((candidate) => candidate.endsWith('.ts') && existsSync(candidate));
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function circles(graph) {
  let index = 0;
  const stack = [];
  const onStack = new Set();
  const indices = new Map();
  const low = new Map();
  const found = [];
  const visit = (node) => {
    indices.set(node, index);
    low.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node), low.get(next)));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node), indices.get(next)));
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? new Set()).has(node)) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!indices.has(node)) visit(node);
  return found;
}

/**
 * Checks every `packages/<name>/src`.
 * @returns per package: files, circles (lists of files), long files ({ file, lines })
 */
export function checkStructure() {
  const packagesDir = join(root, 'packages');
  const report = [];
  for (const name of readdirSync(packagesDir).sort()) {
    const src = join(packagesDir, name, 'src');
    if (!existsSync(src)) continue;
    const files = sourceFiles(src);
    const graph = new Map();
    const long = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
      if (lines > MAX_LINES) long.push({ file: relative(root, file), lines });
      const edges = new Set();
      for (const imported of ts.preProcessFile(text, true, true).importedFiles) {
        const target = resolveLocal(file, imported.fileName);
        if (target !== undefined) edges.add(target);
      }
      graph.set(file, edges);
    }
    report.push({
      package: name,
      files: files.length,
      circles: circles(graph).map((component) => component.map((file) => relative(root, file))),
      long,
    });
  }
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const report = checkStructure();
  let circleCount = 0;
  let longCount = 0;
  for (const entry of report) {
    circleCount += entry.circles.length;
    longCount += entry.long.length;
    console.log(`${entry.package}: ${entry.files} source files, ${entry.circles.length} import circles, ${entry.long.length} over ${MAX_LINES} lines`);
    for (const circle of entry.circles) console.log(`  circle among: ${circle.join(', ')}`);
    for (const { file, lines } of entry.long) console.log(`  long: ${file} (${lines} lines)`);
  }
  console.log(`total: ${circleCount} import circles, ${longCount} files over ${MAX_LINES} lines`);
  if (circleCount > 0 || longCount > 0) process.exitCode = 1;
}
