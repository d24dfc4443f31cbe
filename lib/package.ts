/**
 * Where this package is installed, and its package.json, found from whichever file this
 * code runs in: the TypeScript source, or a bundle chunk at any depth of dist/.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageJson {
  readonly version: string;
  readonly bin: Readonly<Record<string, string>>;
}

let found: { root: string; json: PackageJson } | undefined;

function find(): { root: string; json: PackageJson } {
  if (found) return found;
  // Neither lib/ nor dist/ holds a package.json: the first one upwards is this package's.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      return (found = { root: dir, json: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The directory that holds the package's package.json (and build/, prebuilds/). */
export function packageRoot(): string {
  return find().root;
}

export function packageVersion(): string {
  return find().json.version;
}

/** The file npm links as the `tpm-jwt` command (built: dist/). */
export function cliBin(): string {
  return path.join(packageRoot(), find().json.bin['tpm-jwt']!);
}
