/** TPM handles as users write them: 0x81000010, 81000010, handle:0x81000010. */
import { invalidArgument } from '../errors.js';

export const PERSISTENT_FIRST = 0x81000000;
export const PERSISTENT_LAST = 0x81ffffff;
/** TPM2_RH_OWNER: as a parent, the storage primary created on demand. */
export const OWNER_HIERARCHY = 0x40000001;

const HEX = /^(?:handle:)?(?:0x)?([0-9a-f]{1,8})$/i;

/** A persistent handle from a number or string; throws ERR_INVALID_ARGUMENT. */
export function parsePersistentHandle(value: unknown, what = 'handle'): number {
  let handle: number | undefined;
  if (typeof value === 'number') handle = value;
  else if (typeof value === 'string') {
    const match = HEX.exec(value.trim());
    if (match) handle = Number.parseInt(match[1]!, 16);
  }
  if (handle === undefined || !Number.isInteger(handle) || handle < PERSISTENT_FIRST || handle > PERSISTENT_LAST) {
    throw invalidArgument(
      `${what} must be a persistent handle between 0x81000000 and 0x81ffffff, got ${String(value)}`,
    );
  }
  return handle;
}

export function formatHandle(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`;
}

const BARE_HEX = /^(?:0x)?[0-9a-f]{8}$/i;

/**
 * A KEYREF (CLI and TpmSigner): `handle:0x81000010` or eight hex digits name a
 * persistent handle; anything else is the path of a key file.
 */
export function parseKeyRef(ref: string): { handle: number } | { path: string } {
  const trimmed = ref.trim();
  if (trimmed.startsWith('handle:') || BARE_HEX.test(trimmed)) {
    return { handle: parsePersistentHandle(trimmed, 'key') };
  }
  return { path: ref };
}
