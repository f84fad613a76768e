import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Every ```ts block of the guides and READMEs is type-checked against the
// built packages, so a sample cannot drift from the API.
const root = fileURLToPath(new URL('..', import.meta.url));
const outDir = `${root}test/.doc-samples`;

function sources(): string[] {
  const docs = readdirSync(`${root}docs`).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`);
  const readmes = ['README.md', 'packages/core/README.md', 'packages/server/README.md', 'packages/client/README.md'];
  return [...docs, ...readmes].filter((path) => {
    try {
      readFileSync(root + path);
      return true;
    } catch {
      return false;
    }
  });
}

describe('code samples in the docs', () => {
  it('every ```ts block type-checks against the public API', () => {
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    const files: string[] = [];
    for (const path of sources()) {
      const text = readFileSync(root + path, 'utf8');
      const blocks = [...text.matchAll(/```ts\n([\s\S]*?)```/g)];
      blocks.forEach((match, index) => {
        const name = `${path.replace(/[/.]/g, '_')}_${index}.ts`;
        writeFileSync(`${outDir}/${name}`, `${match[1]}\nexport {};\n`);
        files.push(name);
      });
    }
    expect(files.length).toBeGreaterThan(10);
    writeFileSync(
      `${outDir}/tsconfig.json`,
      JSON.stringify({
        extends: '../../tsconfig.base.json',
        compilerOptions: { noEmit: true, composite: false, declaration: false, noUnusedLocals: false, lib: ['ES2023', 'DOM'] },
        include: ['*.ts'],
      }),
    );
    try {
      execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${outDir}/tsconfig.json`], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      const output = (error as { stdout?: string }).stdout ?? String(error);
      expect.fail(`doc samples do not type-check:\n${output}`);
    }
  });
});
