/** The package as npm publishes it: `npm pack` of this checkout. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Packs the package into `dir`; the tarball's path and the files it holds. Without
 * `prebuilds`, packs whatever prebuilds there are (none in a plain checkout): the
 * tarball then builds from source on install.
 */
export function pack(dir: string, { prebuilds = true } = {}): { tarball: string; files: string[] } {
  const packed = execFileSync('npm', ['pack', '--pack-destination', dir, '--json'], {
    cwd: ROOT,
    env: prebuilds ? process.env : { ...process.env, TPM_JWT_PACK_WITHOUT_PREBUILDS: '1' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [info] = JSON.parse(packed) as [{ filename: string; files: { path: string }[] }];
  return { tarball: path.join(dir, info.filename), files: info.files.map((f) => f.path) };
}
