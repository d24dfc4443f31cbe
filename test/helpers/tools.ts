/** tpm2-tools, run against a given TPM: the outside reference for what the TPM holds. */
import { execFileSync } from 'node:child_process';

/** Runs `tpm2_<command> ...args` and returns its stdout; throws with stderr on failure. */
export function tpm2(tcti: string, command: string, ...args: string[]): string {
  try {
    return execFileSync(`tpm2_${command}`, args, {
      env: { ...process.env, TPM2TOOLS_TCTI: tcti },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`tpm2_${command} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}
