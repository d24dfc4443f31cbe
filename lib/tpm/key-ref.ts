/** Opening the key a KEYREF names: `handle:0x81000010`, bare hex, or a key file path. */
import { readFile } from 'node:fs/promises';

import { TpmJwtError } from '../errors.js';
import { parseKeyRef } from './handle.js';
import { isKeyFilePem } from './key-file.js';
import type { TpmKey } from './key.js';
import type { LoadKeyOptions, Tpm } from './tpm.js';

/**
 * The key `ref` names, opened on `tpm`. Throws ERR_KEY_FILE_INVALID for a file that
 * cannot be read or is not a TSS2 PRIVATE KEY.
 */
export async function loadKeyRef(tpm: Tpm, ref: string, options: LoadKeyOptions = {}): Promise<TpmKey> {
  const parsed = parseKeyRef(ref);
  if ('handle' in parsed) return tpm.loadKey(parsed.handle, options);
  let text: string;
  try {
    text = await readFile(parsed.path, 'utf8');
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read key file ${parsed.path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!isKeyFilePem(text)) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${parsed.path} is not a TSS2 PRIVATE KEY file`);
  }
  return tpm.loadKey(text, options);
}
