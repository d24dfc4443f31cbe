/**
 * The one rule for every file a command writes (--out, --out-dir, --challenge-out, ...):
 * atomically, mode 0600, and never over an existing file unless --force.
 */
import { access } from 'node:fs/promises';

import { writeFileAtomic } from '../atomic-file.js';
import { invalidArgument } from '../errors.js';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/**
 * Throws ERR_INVALID_ARGUMENT naming the first of `files` that exists, unless `force`.
 * Called before the work (a TPM operation, a challenge) so nothing is done for nothing.
 */
export async function refuseExisting(files: readonly string[], force: boolean): Promise<void> {
  if (force) return;
  for (const file of files) {
    if (await exists(file)) throw invalidArgument(`${file} exists; pass --force to replace it`);
  }
}

/**
 * Writes `text` to `file` (atomic, mode 0600, or `mode` for what is not secret); an
 * existing file is ERR_INVALID_ARGUMENT unless `force`.
 */
export async function writeOutput(file: string, text: string, force: boolean, mode?: number): Promise<void> {
  await refuseExisting([file], force);
  // writeFileAtomic checks again, atomically: a file made since is refused too.
  await writeFileAtomic(file, text, { force, ...(mode !== undefined && { mode }) });
}
