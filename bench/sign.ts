/**
 * Signatures per second through TpmSigner, against the raw Esys_Sign loop in C
 * (bench/raw-sign.c) with the same key and session, tpm2_sign from tpm2-tools, and
 * node:crypto with a software key; and how long the event loop waits while signs queue.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { TpmSigner } from '../lib/index.js';
import {
  absolute,
  alternate,
  compared,
  ES256_HANDLE,
  MESSAGE,
  opsRate,
  rawRate,
  signRate,
  type Bench,
  type Row,
} from './common.js';

/** tpm2_sign runs per second, one process each, on the persistent ES256 key. */
function toolsRate(tcti: string, count: number, dir: string): number {
  const message = path.join(dir, 'message');
  writeFileSync(message, MESSAGE);
  const args = ['-c', `0x${ES256_HANDLE.toString(16)}`, '-g', 'sha256', '-o', path.join(dir, 'sig'), message];
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    execFileSync('tpm2_sign', args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, stdio: 'ignore' });
  }
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

export async function signFigures(bench: Bench): Promise<Row[]> {
  const { tcti, keys, n, progress } = bench;
  const rows: Row[] = [];
  for (const alg of ['ES256', 'RS256'] as const) {
    const count = n(alg === 'ES256' ? 1000 : 300);
    progress(`${alg}: TpmSigner with encrypt off vs the raw Esys_Sign loop (password session)`);
    const plain = await alternate(
      5,
      () => signRate(TpmSigner.fromKey(keys.plain[alg]), count),
      () => rawRate(tcti, alg, count, false),
    );
    rows.push(
      compared(`${alg} signs/s, encrypt off vs raw C loop`, 'signs/s', plain.ours, plain.baseline, { min: 0.95 }),
    );
    const encCount = n(alg === 'ES256' ? 250 : 150);
    progress(`${alg}: TpmSigner with the default encrypted session vs the raw loop with the same session`);
    const encrypted = await alternate(
      5,
      () => signRate(TpmSigner.fromKey(keys.encrypted[alg]), encCount),
      () => rawRate(tcti, alg, encCount, true),
    );
    rows.push(
      compared(
        `${alg} signs/s, encrypted vs raw C loop (same session)`,
        'signs/s',
        encrypted.ours,
        encrypted.baseline,
        {
          min: 0.8,
        },
      ),
      compared(`${alg} signs/s, encrypted vs raw C loop (password)`, 'signs/s', encrypted.ours, plain.baseline),
    );
    if (alg !== 'ES256') continue;
    progress('ES256: tpm2_sign in a loop');
    const tools = toolsRate(tcti, n(60), bench.dir);
    rows.push(compared('ES256 signs/s, encrypted vs tpm2_sign loop', 'signs/s', encrypted.ours, tools, { min: 3 }));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const software = opsRate(n(20000), () =>
      nodeSign('sha256', MESSAGE, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    rows.push(
      compared('ES256 signs/s, encrypted TPM vs node:crypto software key', 'signs/s', encrypted.ours, software),
    );
  }

  progress('event loop delay while 300 signs are queued');
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  await Promise.all(Array.from({ length: 300 }, () => keys.encrypted.ES256.sign(Buffer.from('queued'))));
  histogram.disable();
  const maxDelayMs = histogram.max / 1e6;
  rows.push(
    absolute('event loop max delay, 300 queued signs', 'ms', maxDelayMs, {
      text: '<= 10 ms',
      met: maxDelayMs <= 10,
    }),
  );
  return rows;
}
