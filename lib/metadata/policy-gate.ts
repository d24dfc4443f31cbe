/**
 * For a key bound to PCRs: before any token is served, cached or new, the TPM checks
 * that the key's policy still holds (TpmKey.policyHolds: a trial session, not a
 * signing). A token minted before the PCRs moved is still a valid bearer token, so the
 * server must stop handing it out the moment the measured state changes, not when it
 * next signs. Concurrent requests share one check, whose answer stands for a second.
 */
import type { Signer } from '../crypt/signer.js';
import { TpmJwtError } from '../errors.js';
import type { TpmKey } from '../tpm/key.js';

const FRESH_MS = 1000;

/** The TPM key of a TpmSigner when a PCR policy binds it. */
function pcrBoundKey(signer: Signer): TpmKey | undefined {
  // By shape, not instanceof: the signer may come from another copy of this package
  // (a loader's CommonJS and ESM copies, a dependency's own install).
  const key = (signer as { key?: Partial<TpmKey> }).key;
  return key?.pcrs && typeof key.policyHolds === 'function' ? (key as TpmKey) : undefined;
}

/** The check for `signer`, or undefined when its key has no PCR policy. */
export function policyGate(signer: Signer): (() => Promise<void>) | undefined {
  const key = pcrBoundKey(signer);
  if (!key) return undefined;
  let last: { at: number; holds: Promise<boolean> } | undefined;
  return async () => {
    const now = performance.now();
    if (!last || now - last.at > FRESH_MS) last = { at: now, holds: key.policyHolds() };
    const check = last;
    let holds: boolean;
    try {
      holds = await check.holds;
    } catch (err) {
      // The TPM could not answer (503): ask again on the next request.
      if (last === check) last = undefined;
      throw err;
    }
    if (!holds) {
      throw new TpmJwtError(
        'ERR_TPM_POLICY_FAIL',
        "the key's PCR policy no longer holds (the measured state changed): no token is served",
      );
    }
  };
}
