/**
 * Keys shared between calls and processes: a key file (loaded under its parent once,
 * then swapped back from its saved context) and eight processes on one TPM without a
 * resource manager, each against the raw Esys_Sign loop on the persistent key.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { Tpm, TpmSigner } from '../lib/index.js';
import {
  absolute,
  alternate,
  compared,
  ES256_HANDLE,
  median,
  rawRate,
  ROOT,
  signRate,
  type Bench,
  type Row,
} from './common.js';

/** One process signing: opens the key, signs COUNT times four at a time, prints `FIRST LAST` (epoch ms). */
const SIGNER_PROCESS = `
  const { TpmSigner } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
  const [ref, count] = process.argv.slice(1);
  const signer = await TpmSigner.open({ key: ref, retryTimeoutMs: 60_000 });
  const first = Date.now();
  for (let done = 0; done < Number(count); done += 4) {
    await Promise.all([0, 1, 2, 3].map((i) => signer.sign(Buffer.from('process signature ' + (done + i)))));
  }
  const last = Date.now();
  await signer.close();
  console.log(first, last);`;

/** Signs per second of `processes` signers at once, from the first one's start to the last one's end. */
async function aggregateRate(tcti: string, processes: number, count: number): Promise<number> {
  const ref = `handle:0x${ES256_HANDLE.toString(16)}`;
  const spans = await Promise.all(
    Array.from(
      { length: processes },
      () =>
        new Promise<number[]>((resolve, reject) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', SIGNER_PROCESS, ref, String(count)], {
            env: { ...process.env, TPM2TOOLS_TCTI: tcti },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.once('error', reject);
          child.once('close', (code) =>
            code === 0 ? resolve(out.trim().split(' ').map(Number)) : reject(new Error(`a signer exited ${code}`)),
          );
        }),
    ),
  );
  const wall = Math.max(...spans.map(([, last]) => last!)) - Math.min(...spans.map(([first]) => first!));
  return (processes * Math.ceil(count / 4) * 4) / (wall / 1000);
}

export async function sharingFigures(bench: Bench): Promise<Row[]> {
  const { tcti, tpms, n, progress } = bench;
  const rows: Row[] = [];
  progress('sharing: a key file against the raw loop on the persistent key');
  const filePem = (await tpms.plain.createKey({ alg: 'ES256' })).toPem();
  for (const mode of ['plain', 'encrypted'] as const) {
    const key = await tpms[mode].loadKey(filePem);
    const count = n(mode === 'plain' ? 1000 : 250);
    const { ours, baseline } = await alternate(
      5,
      () => signRate(TpmSigner.fromKey(key), count),
      () => rawRate(tcti, 'ES256', count, mode === 'encrypted'),
    );
    const figure = `ES256 signs/s, key file, ${mode === 'plain' ? 'encrypt off' : 'encrypted'} vs raw C loop`;
    rows.push(compared(figure, 'signs/s', ours, baseline, { min: 0.8 }));
  }

  progress('sharing: 8 processes x 200 signs on one TPM, and one process alone');
  const raw = rawRate(tcti, 'ES256', n(250), true);
  const alone = await aggregateRate(tcti, 1, n(200));
  const shared = await aggregateRate(tcti, 8, n(200));
  rows.push(compared('1 process x 200 signs, encrypted, signs/s vs raw C loop (same session)', 'signs/s', alone, raw), {
    ...compared('8 processes x 200 signs, aggregate signs/s vs raw C loop (same session)', 'signs/s', shared, raw),
    target: '>= 0.70x of 1 process',
    met: shared / alone >= 0.7,
  });

  progress('sharing: open + first signature, key file and persistent key');
  const firstSignatureMs = async (ref: number | string) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = process.hrtime.bigint();
      const tpm = await Tpm.open({ tcti });
      await (await tpm.loadKey(ref)).sign(Buffer.from('first'));
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      await tpm.close();
    }
    return median(times);
  };
  rows.push(
    absolute('open + first signature, key file', 'ms', await firstSignatureMs(filePem)),
    absolute('open + first signature, persistent key', 'ms', await firstSignatureMs(ES256_HANDLE)),
  );
  return rows;
}
