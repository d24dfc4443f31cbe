import { invalidArgument } from '../errors.js';

/** A TPM authValue: strings are UTF-8; at most 64 bytes (a SHA-512 digest). */
export function authBytes(auth: string | Uint8Array | undefined, what = 'auth'): Uint8Array | undefined {
  if (auth === undefined) return undefined;
  let bytes: Uint8Array;
  if (typeof auth === 'string') bytes = Buffer.from(auth, 'utf8');
  else if (auth instanceof Uint8Array) bytes = auth;
  else throw invalidArgument(`${what} must be a string or a Uint8Array`);
  if (bytes.length > 64) throw invalidArgument(`${what} must be at most 64 bytes`);
  return bytes;
}
