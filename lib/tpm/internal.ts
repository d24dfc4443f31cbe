/**
 * @internal The addon handles behind a Tpm and a TpmKey, for library code beside lib/tpm
 * that makes its own addon calls with them (attestation). Not exported from the package.
 */
import type { NativeContext, NativePreparedKey } from '../native.js';
import type { TpmKey } from './key.js';
import type { Tpm } from './tpm.js';

let contextOfTpm: (tpm: Tpm) => NativeContext;
let preparedOfKey: (key: TpmKey) => NativePreparedKey;

/** @internal Tpm's static block hands its accessor over here, once. */
export function exposeTpmContext(accessor: (tpm: Tpm) => NativeContext): void {
  contextOfTpm = accessor;
}

/** @internal TpmKey's static block hands its accessor over here, once. */
export function exposePreparedKey(accessor: (key: TpmKey) => NativePreparedKey): void {
  preparedOfKey = accessor;
}

/** The addon context `tpm` makes its calls on (closed with the Tpm). */
export function tpmContext(tpm: Tpm): NativeContext {
  return contextOfTpm(tpm);
}

/**
 * The addon's own copy of `key`'s reference (handle or blobs, auth value, policy), as
 * prepareKey made it: the JavaScript copy of the auth value is zeroed once the key is open.
 */
export function preparedKeyOf(key: TpmKey): NativePreparedKey {
  return preparedOfKey(key);
}
