/** Opening the key a KEYREF names: `handle:0x81000010`, bare hex, or a key file path. */
import { readFile } from 'node:fs/promises';

import { TpmJwtError } from '../errors.js';
import { parseKeyRef } from './handle.js';
import type { TpmKey } from './key.js';
import type { LoadKeyOptions, Tpm } from './tpm.js';

/** The key `ref` names, opened on `tpm`. Throws ERR_KEY_FILE_INVALID for an unreadable file. */
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
  return tpm.loadKey(text, options);
}
