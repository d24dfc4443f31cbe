/**
 * What a long run leaves behind: resident memory after 10,000 signs, and transient
 * objects on the TPM (swtpm has no resource manager: a leaked slot breaks the next caller).
 */
import { execFileSync } from 'node:child_process';

import { absolute, type Bench, type Row } from './common.js';

export async function memoryFigures(bench: Bench): Promise<Row[]> {
  const { tcti, keys, n, progress } = bench;
  progress('memory: RSS over 10,000 signs');
  // npm run bench runs node with --expose-gc.
  const gc = (globalThis as { gc?: () => void }).gc;
  const key = keys.plain.ES256;
  await Promise.all(Array.from({ length: 100 }, () => key.sign(Buffer.from('warm'))));
  gc?.();
  const before = process.memoryUsage().rss;
  for (let batch = 0; batch < n(10000) / 100; batch++) {
    await Promise.all(Array.from({ length: 100 }, () => key.sign(Buffer.from('memory'))));
  }
  gc?.();
  const growthMb = (process.memoryUsage().rss - before) / 2 ** 20;
  const transient = execFileSync('tpm2_getcap', ['handles-transient'], {
    env: { ...process.env, TPM2TOOLS_TCTI: tcti },
    encoding: 'utf8',
  }).trim();
  const left = transient === '' ? 0 : transient.split('\n').length;
  return [
    absolute(`RSS growth over ${n(10000)} signs`, 'MB', growthMb, { text: '< 10 MB', met: growthMb < 10 }),
    absolute('TPM transient objects left afterwards', 'objects', left, { text: '= 0', met: left === 0 }),
  ];
}
