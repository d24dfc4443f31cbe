/**
 * How long a TPM takes per command, so that a software TPM can be made to answer like a
 * chip: a table of milliseconds by command, with a default for the rest.
 *
 * The figures are an approximation for testing, anchored on published measurements, not
 * a model of one part:
 * - Chrome's field study of TPM signing (ECDSA P-256 on Windows, mostly discrete and
 *   firmware TPMs): 200 ms at the median, 600 ms at the 95th percentile; and a benchmark
 *   of ECDSA P-256 and RSA-2048 signing across laptops and servers that found single-digit
 *   signatures per second on most (the "TPM performance" write-up behind tpm-benchmark,
 *   stiankri.substack.com).
 * - The discrete chip this project's relay measured against (the "real chips" issue):
 *   Sign 150 ms, CreatePrimary 120, StartAuthSession 60, Load 20, anything else 5.
 * - Key generation on chips takes seconds for RSA (a prime search) and a few hundred
 *   milliseconds for ECC; a firmware TPM in the CPU's security processor is several
 *   times faster than a discrete part on SPI, and pays no bus latency per command.
 */
import type { TpmCommandName } from './commands.js';

/** Milliseconds per command by name, and `default` for every other command. */
export type LatencyTable = { readonly default: number } & { readonly [command in TpmCommandName]?: number };

export const CHIP_PROFILES = Object.freeze({
  /** A discrete TPM on SPI or LPC (Infineon SLB 96xx, Nuvoton NPCT7xx, ST33 class). */
  'discrete-spi': Object.freeze({
    default: 5,
    Sign: 150,
    Certify: 150,
    Quote: 150,
    CreatePrimary: 120,
    Create: 800,
    CreateLoaded: 800,
    ActivateCredential: 120,
    RSA_Decrypt: 120,
    ECDH_ZGen: 60,
    StartAuthSession: 60,
    Import: 40,
    Load: 20,
    ContextLoad: 10,
    ContextSave: 10,
    EvictControl: 40,
    NV_Read: 15,
  }),
  /** A firmware TPM in the CPU's security processor (AMD fTPM, Intel PTT). */
  'fast-firmware': Object.freeze({
    default: 1,
    Sign: 30,
    Certify: 30,
    Quote: 30,
    CreatePrimary: 40,
    Create: 200,
    CreateLoaded: 200,
    ActivateCredential: 30,
    RSA_Decrypt: 30,
    ECDH_ZGen: 15,
    StartAuthSession: 15,
    Import: 10,
    Load: 5,
    ContextLoad: 2,
    ContextSave: 2,
    EvictControl: 10,
    NV_Read: 3,
  }),
} satisfies Record<string, LatencyTable>);

export type ChipProfileName = keyof typeof CHIP_PROFILES;
