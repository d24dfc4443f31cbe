/** Writing secrets to disk: all or nothing, mode 0600, never over a file by accident. */
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';

import { TpmJwtError } from './errors.js';

/**
 * Writes `text` to `file` with mode 0600 (or `mode`, for what is not secret: a
 * certificate) through a temporary file in the same directory, so a reader sees the old
 * content or the new, never a torn write. Without `force` an existing file is kept and
 * ERR_INVALID_ARGUMENT is thrown; the check and the write are one atomic link(2). A path
 * that cannot be written is ERR_INVALID_ARGUMENT too.
 */
export async function writeFileAtomic(
  file: string,
  text: string,
  options: { force?: boolean; mode?: number } = {},
): Promise<void> {
  try {
    await write(file, text, options.force === true, options.mode ?? 0o600);
  } catch (err) {
    if (err instanceof TpmJwtError) throw err;
    // A directory that is missing or not writable: the caller's path, so its code.
    throw new TpmJwtError('ERR_INVALID_ARGUMENT', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

async function write(file: string, text: string, force: boolean, mode: number): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(text);
      // Widened only once the content is whole, and past the umask open() applies.
      if (mode !== 0o600) await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (force) {
      await rename(temp, file);
      return;
    }
    try {
      await link(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TpmJwtError('ERR_INVALID_ARGUMENT', `${file} exists; pass force to replace it`);
      }
      throw err;
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}
