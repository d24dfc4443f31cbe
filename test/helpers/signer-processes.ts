/** Many processes signing on one TPM at once (test/28, bench/): test/fixtures/share-signer.ts. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SIGNER = fileURLToPath(new URL('../fixtures/share-signer.ts', import.meta.url));

/** Runs `processes` signers at once on `tcti`, each signing `count` times with `ref`; their outputs. */
export function signAtOnce(
  tcti: string,
  processes: number,
  ref: string,
  count: number,
  mode: string,
): Promise<string[]> {
  return Promise.all(
    Array.from(
      { length: processes },
      () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', SIGNER, ref, String(count), mode], {
            env: { ...process.env, TPM2TOOLS_TCTI: tcti },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.once('error', reject);
          child.once('close', () => resolve(out.trim()));
        }),
    ),
  );
}
