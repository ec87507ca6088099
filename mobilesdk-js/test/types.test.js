// The committed declarations (types/*.d.ts) are what tsc makes of the JSDoc today, and the JSDoc
// type-checks under `strict`: `npm run types` rewrites them after a change.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;

test('types/*.d.ts match the sources and the sources type-check', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const out = mkdtempSync(join(tmpdir(), 'nextauth-types-'));
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', out], {
      cwd: root,
      stdio: 'pipe',
    });
    const made = readdirSync(out).sort();
    assert.deepEqual(readdirSync(join(root, 'types')).sort(), made);
    for (const name of made) {
      assert.equal(
        readFileSync(join(root, 'types', name), 'utf8'),
        readFileSync(join(out, name), 'utf8'),
        `types/${name} is stale: run npm run types`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
