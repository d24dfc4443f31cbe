/**
 * The work an X.509 verifier does, counted rather than timed: every signature it
 * checks goes through X509Certificate.verify.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';

/** Runs `run`, counting X509Certificate.verify calls meanwhile. */
export function countSignatureChecks<T>(run: () => T): { result: T; checks: number } {
  const original = X509Certificate.prototype.verify;
  let checks = 0;
  X509Certificate.prototype.verify = function (this: X509Certificate, key: KeyObject) {
    checks++;
    return original.call(this, key);
  };
  try {
    return { result: run(), checks };
  } finally {
    X509Certificate.prototype.verify = original;
  }
}
