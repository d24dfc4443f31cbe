/**
 * Google APIs over mutual TLS with the TPM key (certificate-based access): each service's
 * mTLS endpoint (mtls-endpoint.ts), reached through a TpmTlsAgent that presents the key's
 * certificate. One agent per client: its kept-alive connections cost one TPM signature
 * each, not one per request.
 */
import type { Agent } from 'node:https';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { TpmTlsAgent } from '../tls/agent.js';
import { TpmKey } from '../tpm/key.js';

export interface MtlsOptions {
  /** PEM: the TPM key's certificate, then its chain. */
  certificate: string;
  /** PEM roots to check Google's servers against instead of the system's. */
  ca?: string;
}

/**
 * The agent that presents `options.certificate` for the key `signer` holds. Throws
 * ERR_INVALID_ARGUMENT for a signer whose key is not in a TPM, or (when the first
 * connection is made) a certificate that is not for the key.
 */
export function mtlsAgent(signer: Signer, options: MtlsOptions): Agent {
  // The key where TpmSigner (and a signer under another key id) keeps it.
  const key = (signer as { key?: unknown }).key;
  if (!(key instanceof TpmKey)) throw invalidArgument('mTLS with the TPM key needs a signer whose key is in a TPM');
  return new TpmTlsAgent({
    key,
    certificate: options.certificate,
    ...(options.ca !== undefined && { ca: options.ca }),
  });
}
