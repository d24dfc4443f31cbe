/** Reading an attestation verdict in assertions. */
import type { AttestationVerdict } from '../../lib/index.js';

/** The checks of a verdict that failed, in order. */
export const failing = (verdict: AttestationVerdict) => verdict.reasons.filter((r) => !r.ok).map((r) => r.check);

/** The detail of one check of a verdict. */
export const reason = (verdict: AttestationVerdict, check: string) =>
  verdict.reasons.find((r) => r.check === check)!.detail;
