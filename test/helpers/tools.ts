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

/**
 * The transient objects or sessions (`kinds`: 'transient', 'loaded-session', ...) left
 * in the TPM, '' when none. A handle must stay for a few checks to count: on a TPM
 * shared with another client (docker-compose runs one beside the tests) that
 * client's objects come and go within milliseconds, while a leak stays.
 */
export async function leftovers(tcti: string, kinds: readonly string[]): Promise<string> {
  let left = '';
  for (let check = 0; check < 5; check++) {
    left = kinds
      .map((kind) => tpm2(tcti, 'getcap', `handles-${kind}`).trim())
      .filter((handles) => handles !== '')
      .join('\n');
    if (left === '') return '';
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return left;
}
