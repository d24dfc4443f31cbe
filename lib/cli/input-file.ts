/**
 * The one rule for every file a command reads (--in, --ca, a positional argument, ...):
 * one that cannot be read is an error naming it, with the system's reason.
 */
import { readFile } from 'node:fs/promises';

import { TpmJwtError, type TpmJwtErrorCode } from '../errors.js';

interface InputFileOptions {
  /** What the file is, for the message: "cannot read WHAT FILE: reason". */
  what?: string;
  /** The error's code; ERR_INVALID_ARGUMENT unless given. */
  code?: TpmJwtErrorCode;
}

/** The bytes of `file`; one that cannot be read is a TpmJwtError (`code`) naming it. */
export async function readInput(file: string, options: InputFileOptions = {}): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const name = options.what === undefined ? file : `${options.what} ${file}`;
    throw new TpmJwtError(options.code ?? 'ERR_INVALID_ARGUMENT', `cannot read ${name}: ${(err as Error).message}`);
  }
}

/** The text (UTF-8) of `file`; one that cannot be read is a TpmJwtError (`code`) naming it. */
export async function readTextInput(file: string, options: InputFileOptions = {}): Promise<string> {
  return (await readInput(file, options)).toString('utf8');
}

/** The text of the file --`flag` names, or undefined without the flag. */
export async function readFlagText(
  values: Readonly<Record<string, unknown>>,
  flag: string,
  what: string,
): Promise<string | undefined> {
  const file = values[flag];
  return typeof file === 'string' ? readTextInput(file, { what }) : undefined;
}
