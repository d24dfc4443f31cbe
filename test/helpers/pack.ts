/** The package as npm publishes it: `npm pack` of this checkout. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Packs the package into `dir`; the tarball's path and the files it holds. */
export function pack(dir: string): { tarball: string; files: string[] } {
  const packed = execFileSync('npm', ['pack', '--pack-destination', dir, '--json'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [info] = JSON.parse(packed) as [{ filename: string; files: { path: string }[] }];
  return { tarball: path.join(dir, info.filename), files: info.files.map((f) => f.path) };
}
