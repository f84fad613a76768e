// The shape rules of docs/architecture.md: no import circle among the source
// files of a package, no source file over MAX_LINES lines. The same check
// runs by hand as `pnpm lint:structure`, which prints the offenders.
import { describe, expect, it } from 'vitest';
import { checkStructure, circles, MAX_LINES } from '../scripts/lint-structure.mjs';

interface PackageReport {
  package: string;
  files: number;
  circles: string[][];
  long: { file: string; lines: number }[];
}

describe('source structure', () => {
  const report = checkStructure() as unknown as PackageReport[];

  it('checks the three packages', () => {
    expect(report.map((entry) => entry.package)).toEqual(['client', 'core', 'server']);
    for (const entry of report) expect(entry.files).toBeGreaterThan(3);
  });

  it('the circle finder finds circles, self-imports included, and not chains', () => {
    const graph = (edges: Record<string, string[]>): Map<string, Set<string>> => new Map(Object.entries(edges).map(([from, to]) => [from, new Set(to)]));
    expect(circles(graph({ a: ['b'], b: ['c'], c: ['a'], d: ['a'] }))).toEqual([['a', 'b', 'c']]);
    expect(circles(graph({ a: ['a'] }))).toEqual([['a']]);
    expect(circles(graph({ a: ['b'], b: ['c'], c: [] }))).toEqual([]);
  });

  it('has no import circle among the source files of any package', () => {
    expect(report.flatMap((entry) => entry.circles)).toEqual([]);
  });

  it(`has no source file over ${MAX_LINES} lines`, () => {
    expect(report.flatMap((entry) => entry.long)).toEqual([]);
  });
});
