/**
 * npm run test:valgrind: the sign loop (test/fixtures/sign-loop.mjs) under valgrind
 * memcheck with a debug build of the addon, at two lengths. The addon passes when
 * valgrind finds no invalid access or uninitialised use anywhere in its frames, and
 * the memory it definitely loses does not grow with the number of calls (Node keeps
 * a few per-object records to the end of the process, a few hundred bytes that vary
 * from run to run; a leak per call would scale).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startSoftwareTpm } from '../lib/testing/index.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const ADDON = path.join(ROOT, 'build-debug', 'Debug', 'tpm_jwt.node');
/** How much more the longer run may lose without a leak per call: see main(). */
const LOST_BYTES_NOISE = 512;
const say = (line: string) => process.stderr.write(`test:valgrind: ${line}\n`);
const SOURCES = new Set(
  ['native', 'native/tss'].flatMap((dir) => readdirSync(path.join(ROOT, dir)).filter((f) => /\.(cc|h)$/.test(f))),
);

interface Report {
  errors: string[];
  addonLostBytes: number;
}

/** Runs the loop under memcheck and keeps what concerns the addon. */
function memcheck(tcti: string, rounds: number): Report {
  const run = spawnSync(
    'valgrind',
    [
      '--leak-check=full',
      '--show-leak-kinds=definite',
      '--num-callers=40',
      'node',
      'test/fixtures/sign-loop.mjs',
      String(rounds),
    ],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, TPM2TOOLS_TCTI: tcti, TPM_JWT_ADDON: ADDON },
      maxBuffer: 256 * 2 ** 20,
    },
  );
  if (!run.stdout.includes('done'))
    throw new Error(`the sign loop did not finish under valgrind:\n${run.stderr.slice(-4000)}`);
  // Valgrind's records are blank-line separated blocks on stderr, lines prefixed ==pid==.
  const blocks = run.stderr.split(/\n==\d+== \n/).map((block) => block.replace(/^==\d+== ?/gm, ''));
  // With debug info valgrind names source files, not the .node: match ours by name.
  const ours = (block: string) =>
    block.includes('tpm_jwt.node') ||
    [...block.matchAll(/\(([\w.]+\.(?:cc|h)):\d+\)/g)].some((m) => SOURCES.has(m[1]!));
  const errors = blocks.filter(
    (b) =>
      /^(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Mismatched free|Syscall param)/m.test(b) &&
      ours(b),
  );
  let addonLostBytes = 0;
  for (const block of blocks) {
    const lost = /([\d,]+) bytes in [\d,]+ blocks are definitely lost/.exec(block);
    if (lost && ours(block)) addonLostBytes += Number(lost[1]!.replace(/,/g, ''));
  }
  return { errors, addonLostBytes };
}

async function main(): Promise<void> {
  say('building the addon (Debug) and dist/');
  execFileSync('npx', ['cmake-js', 'rebuild', '--out', 'build-debug', '-D'], { cwd: ROOT, stdio: 'ignore' });
  execFileSync('npm', ['run', 'build:ts'], { cwd: ROOT, stdio: 'ignore' });
  const swtpm = await startSoftwareTpm();
  try {
    say('memcheck, 5 rounds');
    const short = memcheck(swtpm.tcti, 5);
    say('memcheck, 25 rounds');
    const long = memcheck(swtpm.tcti, 25);
    const errors = [...short.errors, ...long.errors];
    for (const error of errors) process.stderr.write(`${error}\n\n`);
    process.stdout.write(
      `test:valgrind: ${errors.length} memory errors in addon frames; definitely lost with addon frames: ` +
        `${short.addonLostBytes} bytes after 5 rounds, ${long.addonLostBytes} after 25\n`,
    );
    // What Node keeps to the end differs between runs by a few records (160 to 320 bytes
    // seen, either way round); a leak per call would add 20 rounds x 8 calls x at least one
    // 16-byte heap block, 2,560 bytes or more.
    if (errors.length > 0 || long.addonLostBytes > short.addonLostBytes + LOST_BYTES_NOISE) process.exitCode = 1;
  } finally {
    await swtpm.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`test:valgrind failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
