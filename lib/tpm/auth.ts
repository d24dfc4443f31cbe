/** TPM auth values as the addon takes them, and the discipline that keeps them short-lived. */
import { invalidArgument } from '../errors.js';

/**
 * A private copy of a TPM authValue: strings are UTF-8; at most 64 bytes (a SHA-512
 * digest). A copy, so the library can zero it without touching the caller's bytes.
 * Throws ERR_INVALID_ARGUMENT.
 */
function authBytes(auth: string | Uint8Array | undefined, what = 'auth'): Uint8Array | undefined {
  if (auth === undefined) return undefined;
  if (typeof auth !== 'string' && !(auth instanceof Uint8Array)) {
    throw invalidArgument(`${what} must be a string or a Uint8Array`);
  }
  // Over an ArrayBuffer of its own, outside the JavaScript heap: V8 keeps typed arrays
  // of up to 64 bytes inside the heap, where the garbage collector moves them (and
  // handing one to the addon copies it out) and leaves old bytes that zeroing misses.
  const bytes = Buffer.from(new ArrayBuffer(typeof auth === 'string' ? Buffer.byteLength(auth) : auth.length));
  if (typeof auth === 'string') bytes.write(auth, 'utf8');
  else bytes.set(auth);
  if (bytes.length > 64) {
    bytes.fill(0);
    throw invalidArgument(`${what} must be at most 64 bytes`);
  }
  return bytes;
}

/**
 * Runs `use` with authBytes(auth) and zeroes the copy when it settles: the addon takes
 * its own copy when a call starts (and wipes that one itself), so none is left behind
 * in JavaScript memory.
 */
export async function withAuth<T>(
  auth: string | Uint8Array | undefined,
  use: (bytes: Uint8Array | undefined) => Promise<T>,
  what = 'auth',
): Promise<T> {
  const bytes = authBytes(auth, what);
  try {
    return await use(bytes);
  } finally {
    bytes?.fill(0);
  }
}
