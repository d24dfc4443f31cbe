/** Which attestation key a command uses: --ak-type and --ak-handle (attest, enroll). */
import type { AttestationKeyOptions } from '../attest/device.js';
import { parsePersistentHandle } from '../tpm/handle.js';
import { flagValue, optional, UsageError, type Values } from './args.js';

export function akOptions(values: Values): AttestationKeyOptions & { akHandle?: number } {
  const type = optional(values, 'ak-type');
  if (type !== undefined && type !== 'rsa' && type !== 'ecc') throw new UsageError('--ak-type must be rsa or ecc');
  const handle = optional(values, 'ak-handle');
  if (values['replace-ak-handle'] !== undefined && handle === undefined) {
    throw new UsageError('--replace-ak-handle applies to --ak-handle');
  }
  return {
    ...(type !== undefined && { akType: type }),
    ...(handle !== undefined && { akHandle: flagValue('ak-handle', handle, parsePersistentHandle) }),
  };
}
