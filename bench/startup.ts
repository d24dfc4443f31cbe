/**
 * Start-up: a fresh process's first token against one raw signature, and the wall time
 * of `tpm-jwt token` and of `import('tpm-jwt')` against bare Node starting.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { CLI, compared, ES256_HANDLE, median, rawRate, ROOT, type Bench, type Row } from './common.js';

const INDEX = JSON.stringify(path.join(ROOT, 'dist', 'index.js'));

/** The median wall time of seven `node ARGS` runs, ms. */
function wallMs(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const start = process.hrtime.bigint();
    const run = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`${args.join(' ')} failed: ${run.stderr}`);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

export async function startupFigures(bench: Bench): Promise<Row[]> {
  const { tcti, progress } = bench;
  progress('cold start: import + open + first token, in a fresh process');
  const script = `
    const t0 = performance.now();
    const { Tpm, TpmSigner, jwt } = await import(${INDEX});
    const tpm = await Tpm.open({ tcti: ${JSON.stringify(tcti)} });
    const key = await tpm.loadKey(${ES256_HANDLE});
    const creds = new jwt.Credentials(TpmSigner.fromKey(key), { issuer: 'a', subject: 'a', audience: 'https://x/' });
    await creds.refresh();
    console.log(performance.now() - t0);
    await tpm.close();`;
  const coldRun = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (coldRun.status !== 0) throw new Error(`the cold-start run failed: ${coldRun.stderr}`);
  const coldStart = Number(coldRun.stdout.trim());
  const oneRawSign = 1000 / rawRate(tcti, 'ES256', 20, false);

  progress('start-up: tpm-jwt token and import(tpm-jwt), against bare node');
  const bare = wallMs(['-e', '']);
  const key = `0x${ES256_HANDLE.toString(16)}`;
  const token = wallMs([CLI, 'token', '--key', key, '--email', 'a@b', '--audience', 'https://x/', '--tcti', tcti]);
  const imported = wallMs(['--input-type=module', '-e', `await import(${INDEX})`]);
  return [
    compared('cold start to first token vs one raw sign', 'ms', coldStart, oneRawSign),
    compared('tpm-jwt token (encrypted session), wall time vs node -e ""', 'ms', token, bare, { max: 1.6 }),
    {
      ...compared('import(tpm-jwt) wall time vs node -e ""', 'ms', imported, bare),
      target: '<= 25 ms above',
      met: imported - bare <= 25,
    },
  ];
}
