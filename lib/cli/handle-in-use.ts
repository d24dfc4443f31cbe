/**
 * ERR_TPM_HANDLE_IN_USE in the CLI's terms. The library's message names its own option
 * (force); a CLI user acts on the flag that gave the handle and the one that replaces
 * what is there, which only the command knows.
 */
import { TpmJwtError } from '../errors.js';
import { formatHandle } from '../tpm/handle.js';

/** Rethrows `err`, as the CLI's message when it is ERR_TPM_HANDLE_IN_USE. */
export function handleInUse(err: unknown, handleFlag: string, handle: number, replaceFlag: string): never {
  if (err instanceof TpmJwtError && err.code === 'ERR_TPM_HANDLE_IN_USE') {
    throw new TpmJwtError(
      err.code,
      `${handleFlag} ${formatHandle(handle)} already holds a persistent object; pass ${replaceFlag} to replace it`,
      { cause: err },
    );
  }
  throw err;
}
