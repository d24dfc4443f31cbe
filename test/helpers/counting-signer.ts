import { TpmJwtError } from '../../lib/index.js';
import type { Signer } from '../../lib/index.js';

/** Wraps a signer to count signings; the first `failures` reject as a full TPM would. */
export function countingSigner(signer: Signer, failures = 0): Signer & { count: number } {
  const counted = {
    algorithm: signer.algorithm,
    keyId: signer.keyId,
    count: 0,
    async sign(message: Uint8Array) {
      counted.count++;
      if (failures-- > 0) throw new TpmJwtError('ERR_TPM_OBJECT_MEMORY', 'out of object slots');
      return signer.sign(message);
    },
  };
  return counted;
}
