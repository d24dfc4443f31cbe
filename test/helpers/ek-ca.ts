/**
 * A TPM as it leaves the factory, for the suites that also want swtpm_setup's EK
 * certificate files: tpm-jwt/testing's manufacture, with the CA in a directory of the
 * test's (not /var/lib/swtpm-localca) and the directory kept, so two TPMs can share it.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

import { manufacture as manufactureTpm, manufacturerCa, type ManufacturerCa } from '../../lib/testing/index.js';

/** The local CA: the root the EK certificates chain to, the intermediate that signs them, and where they live. */
export interface EkCa extends ManufacturerCa {
  readonly dir: string;
}

/**
 * Manufactures TPM state in `stateDir` with the CA in `caDir` (made on first use, reused
 * after). Returns the EK certificate files swtpm_setup wrote besides NV (DER), by name.
 */
export function manufacture(stateDir: string, caDir: string): Record<string, Buffer> {
  const certs = path.join(stateDir, 'ek-certs');
  mkdirSync(certs, { recursive: true });
  manufactureTpm(stateDir, caDir, certs);
  return Object.fromEntries(readdirSync(certs).map((name) => [name, readFileSync(path.join(certs, name))]));
}

/** The local CA in `caDir` after a manufacture. */
export function ekCa(caDir: string): EkCa {
  return { dir: caDir, ...manufacturerCa(caDir) };
}
