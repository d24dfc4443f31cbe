/**
 * npm run bench [-- GROUP ...] [--tcti TCTI] [--quick]: tpm-jwt against its baselines,
 * in one run on one TPM.
 *
 * Each figure group (a file here) returns its rows; every baseline is something measured
 * in the same run that is not tpm-jwt (common.ts). Starts a private swtpm unless --tcti is
 * given, and persists the keys the groups share. Prints a table, writes bench/results.json;
 * progress goes to stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { Tpm } from '../lib/index.js';
import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';
import { buildRawSign, ES256_HANDLE, HERE, RS256_HANDLE, type Bench, type Group, type Row } from './common.js';
import { chipFigures } from './chip.js';
import { enrollFigures } from './enroll.js';
import { memoryFigures } from './memory.js';
import { metadataFigures } from './metadata.js';
import { sharingFigures } from './sharing.js';
import { signFigures } from './sign.js';
import { startupFigures } from './startup.js';
import { tokenFigures } from './tokens.js';

/** In the order they run; memory last, so that it counts what every other group left on the TPM. */
const GROUPS: Record<string, Group> = {
  sign: signFigures,
  sharing: sharingFigures,
  tokens: tokenFigures,
  metadata: metadataFigures,
  startup: startupFigures,
  chip: chipFigures,
  enroll: enrollFigures,
  memory: memoryFigures,
};

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { tcti: { type: 'string' }, quick: { type: 'boolean' } },
    allowPositionals: true,
  });
  const unknown = positionals.filter((name) => !(name in GROUPS));
  if (unknown.length > 0)
    throw new Error(`no group ${unknown.join(', ')}: groups are ${Object.keys(GROUPS).join(', ')}`);
  const selected = Object.keys(GROUPS).filter((name) => positionals.length === 0 || positionals.includes(name));
  const scale = values.quick ? 0.2 : 1;
  const dir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-bench-'));
  let swtpm: SoftwareTpm | undefined;
  const tcti = values.tcti ?? (swtpm = await startSoftwareTpm()).tcti;
  const rows: Row[] = [];
  const tpms: Tpm[] = [];
  try {
    progress(`TPM ${tcti}; groups ${selected.join(', ')}`);
    progress('building the raw Esys_Sign loop');
    buildRawSign();
    const plain = await Tpm.open({ tcti, encrypt: false });
    tpms.push(plain);
    await plain.createKey({ alg: 'ES256', persist: ES256_HANDLE, force: true });
    await plain.createKey({ alg: 'RS256', persist: RS256_HANDLE, force: true });
    const encrypted = await Tpm.open({ tcti });
    tpms.push(encrypted);
    const loaded = async (tpm: Tpm) => ({
      ES256: await tpm.loadKey(ES256_HANDLE),
      RS256: await tpm.loadKey(RS256_HANDLE),
    });
    const bench: Bench = {
      tcti,
      dir,
      quick: values.quick === true,
      n: (count) => Math.max(10, Math.round(count * scale)),
      progress,
      tpms: { plain, encrypted },
      keys: { plain: await loaded(plain), encrypted: await loaded(encrypted) },
    };
    for (const name of selected) rows.push(...(await GROUPS[name]!(bench)));
    await plain.evict(ES256_HANDLE);
    await plain.evict(RS256_HANDLE);
  } finally {
    for (const tpm of tpms) await tpm.close();
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${table(rows)}\n`);
  writeFileSync(
    path.join(HERE, 'results.json'),
    `${JSON.stringify({ date: new Date(), node: process.version, cpus: cpus().length, rows }, null, 2)}\n`,
  );
}

const format = (x: number | undefined) => (x === undefined ? '' : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));

/** The rows as a Markdown table, as docs/performance.md shows them. */
function table(rows: Row[]): string {
  return [
    '| figure | value | baseline | unit | ratio | target |',
    '| --- | ---: | ---: | --- | ---: | --- |',
    ...rows.map(
      (r) =>
        `| ${r.figure} | ${format(r.value)} | ${format(r.baseline)} | ${r.unit} | ${r.ratio?.toFixed(2) ?? ''} ` +
        `| ${r.target ?? ''}${r.met === undefined ? '' : r.met ? ' ✓' : ' ✗'} |`,
    ),
  ].join('\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
