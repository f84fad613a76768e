// The shape of packages/server/src: no import circles (type-only imports
// and dynamic imports count too) and no source file past about 500 lines.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
/** users/telnet/telnet.ts is 513 lines and is split on the telnet branch. */
const MAX_LINES = 520;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.[^'"]+)['"]/g)].map((match) => resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
    graph.set(file, targets);
  }
  return graph;
}

function cycles(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const found: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next].map((path) => relative(SRC, path)).join(' -> '));
      else if (state.get(next) === undefined && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (state.get(node) === undefined) visit(node);
  return found;
}

describe('packages/server/src', () => {
  const files = sources(SRC);

  it('has no import circles', () => {
    const graph = importGraph(files);
    for (const [file, targets] of graph) for (const target of targets) expect(graph.has(target), `${relative(SRC, file)} imports a missing ${relative(SRC, target)}`).toBe(true);
    expect(cycles(graph)).toEqual([]);
  });

  it('the circle finder finds a circle', () => {
    expect(cycles(new Map([['/a', ['/b']], ['/b', ['/a']]]))).toHaveLength(1);
  });

  it(`has no source file over ${MAX_LINES} lines`, () => {
    const long = files.map((file) => [relative(SRC, file), readFileSync(file, 'utf8').split('\n').length] as const).filter(([, lines]) => lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});
