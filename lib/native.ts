/**
 * The addon's exact surface, and the one place that loads it. Everything above this
 * file talks to the TPM through these types only.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';

import type { TpmKeySpec } from './algorithms.js';
import { TpmJwtError } from './errors.js';
import { packageRoot } from './package.js';

/** PolicyPCR over `indexes` of the `bank` (a TPMI_ALG_HASH), then PolicyAuthValue if set. */
interface NativePcrPolicy {
  bank: number;
  indexes: number[];
  authValue: boolean;
}

/** A key as the addon names it: a persistent handle, or blobs under a parent. */
export type NativeKeyRef = ({ handle: number } | { parent: number; public: Uint8Array; private: Uint8Array }) & {
  auth?: Uint8Array;
  /** Present when the key is authorised by a PCR policy rather than its auth value. */
  policy?: NativePcrPolicy;
};

interface NativeSignScheme {
  scheme: number;
  hash: number;
  coordinateSize?: number;
}

/** A key's blobs: marshaled TPM2B_PUBLIC (decoded in TypeScript, wire/tpm-structures.ts) and TPM2B_PRIVATE. */
interface NativeKeyBlob {
  public: Buffer;
  private: Buffer;
}

/** The attestation key: a primary in the endorsement hierarchy (see native/tss/attestation_key.h). */
export interface NativeAkSpec {
  /** TPM2_ALG_RSA or TPM2_ALG_ECC: the standard AK template of that type. */
  type: number;
  /** A marshaled TPMT_PUBLIC to use instead (a platform's AK template from NV). */
  template?: Uint8Array;
  /**
   * Persistent handle (0x81xxxxxx) of the AK: used when it holds the endorsement primary of
   * the template. certify persists one at an empty handle; activateCredential never does.
   */
  handle?: number;
  /** certify only: replace an object at `handle` that is not that AK. */
  force?: boolean;
}

/** The endorsement key: persistent, or the primary from the TCG default template of `type`. */
export interface NativeEkSpec {
  type: number;
  handle?: number;
  /** The public key it must have: RSA modulus, or ECC x || y. */
  unique?: Uint8Array;
}

/** What TPM2_Certify returns, with the public areas a verifier needs. */
interface NativeCertification {
  /** TPMS_ATTEST: the bytes the signature covers. */
  attest: Buffer;
  /** TPMT_SIGNATURE. */
  signature: Buffer;
  /** TPM2B_PUBLIC of the AK. */
  akPublic: Buffer;
  /** TPM2B_PUBLIC of the certified key. */
  keyPublic: Buffer;
}

/**
 * What the SRK handle (0x81000001) holds: nothing, the storage primary that key files
 * name as their parent (then no cold start creates it), or another object.
 */
export type SrkState = 'absent' | 'storage-primary' | 'other';

export interface NativeTlsOptions {
  /** A host name or IP address: SNI (names only) and the name the server's certificate must hold. */
  servername?: string;
  /** PEM: the key's certificate, then its chain. */
  certificate: string;
  /** PEM roots to trust instead of the system's. */
  ca?: string;
}

declare const tlsSession: unique symbol;
/** A TLS connection held by the addon. */
export type NativeTlsSession = { readonly [tlsSession]: true };

export interface NativeTlsStep {
  toPeer: Buffer;
  received: Buffer;
  /** How much of the plaintext went out (all of it once the handshake is done). */
  written: number;
  established: boolean;
  /** The peer sent close_notify. */
  closed: boolean;
  /** Why the connection failed: ERR_TLS, or the TPM's code when its signature failed. */
  failure?: Error;
}

declare const prepared: unique symbol;
/** A key parsed once by the addon (prepareKey), for the calls that sign with it. */
export type NativePreparedKey = { readonly [prepared]: true };

/** One ESYS context. Calls run in order, one at a time, off the JS thread. */
export interface NativeContext {
  /** Connects and, unless `encrypt` is false, starts the salted session. */
  open(
    tcti: string,
    ownerAuth: Uint8Array | undefined,
    session: { encrypt: boolean; saltKey?: 'primary' | 'ek'; saltKeyName?: Uint8Array },
    retryTimeoutMs?: number,
    commandTimeoutMs?: number,
  ): Promise<{ saltKeyName: Buffer }>;
  createKey(parent: number, spec: TpmKeySpec, auth?: Uint8Array, policy?: NativePcrPolicy): Promise<NativeKeyBlob>;
  /** Marshaled TPM2B_PUBLIC of a persistent object. */
  readPublic(handle: number): Promise<Buffer>;
  persist(key: NativeKeyRef, handle: number, force: boolean): Promise<void>;
  evict(handle: number): Promise<void>;
  /** What is at 0x81000001 (see Tpm.srk), after persisting the storage primary there if `persist`. */
  srk(persist: boolean, force: boolean): Promise<SrkState>;
  /** Parses a key reference once; synchronous, no TPM call. */
  prepareKey(key: NativeKeyRef): NativePreparedKey;
  sign(key: NativePreparedKey, digest: Uint8Array, scheme: NativeSignScheme): Promise<Buffer>;
  /** Signs a message hashed by the TPM itself (a real ticket, for restricted keys). */
  signMessage(key: NativePreparedKey, message: Uint8Array, scheme: NativeSignScheme): Promise<Buffer>;
  /** Marshaled TPM2B_PUBLIC of the parent (the storage primary for TPM2_RH_OWNER). */
  parentPublic(parent: number): Promise<Buffer>;
  /** TPM2_Import of a duplication blob (outer wrapper only); the TPM2B_PRIVATE to load. */
  importKey(parent: number, pub: Uint8Array, duplicate: Uint8Array, inSymSeed: Uint8Array): Promise<Buffer>;
  /** Loads the key and flushes it again: proves it belongs to this TPM and parent. */
  probe(key: NativeKeyRef): Promise<void>;
  handles(first: number, max: number): Promise<number[]>;
  /** The digest `policy` has over the PCRs' current values (a trial session: nothing is authorised). */
  policyDigest(policy: NativePcrPolicy): Promise<Buffer>;
  /** TPM2_Certify of a prepareKey key (its auth value the addon's copy) by the AK; `qualifyingData` <= 64 bytes. */
  certify(key: NativePreparedKey, ak: NativeAkSpec, qualifyingData: Uint8Array): Promise<NativeCertification>;
  /**
   * TPM2_ActivateCredential: the secret of a credential made for the EK and the AK named
   * `akName` (TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, with their sizes), with an AK that
   * exists (the template's transient primary, or the one at `ak.handle`). The caller wipes it.
   */
  activateCredential(
    ak: NativeAkSpec,
    akName: Uint8Array | undefined,
    ek: NativeEkSpec,
    credentialBlob: Uint8Array,
    encryptedSecret: Uint8Array,
  ): Promise<Buffer>;
  /** The content of an NV index; ERR_TPM_KEY_NOT_FOUND when it is not defined. */
  nvRead(index: number): Promise<Buffer>;
  /**
   * A TLS client connection whose handshake the key signs (native/tss/tls_session.h);
   * synchronous, no TPM call. Throws ERR_INVALID_ARGUMENT for a certificate not for the key.
   */
  tlsOpen(key: NativePreparedKey, spki: Uint8Array, ec: boolean, options: NativeTlsOptions): NativeTlsSession;
  /** Frees a connection's OpenSSL state now; a step still queued keeps its own. */
  tlsRelease(session: NativeTlsSession): void;
  /** One step of it (or its close_notify): what to send, what arrived. Never rejects for TLS: see `failure`. */
  tlsStep(
    session: NativeTlsSession,
    fromPeer: Uint8Array,
    plaintext: Uint8Array,
    shutdown: boolean,
  ): Promise<NativeTlsStep>;
  /** Rejects calls not yet started with ERR_TPM_CLOSED, then releases the TPM. */
  close(): Promise<void>;
}

interface NativeAddon {
  Context: new () => NativeContext;
  setErrorClass(errorClass: typeof TpmJwtError): void;
  /**
   * The TPM2B_PUBLIC of a key to import and its plaintext TPM2B_SENSITIVE (the caller
   * wraps it, then wipes it).
   */
  marshalImportable(key: {
    spec: TpmKeySpec;
    secret: Uint8Array;
    auth?: Uint8Array;
    modulus?: Uint8Array;
    exponent?: number;
    x?: Uint8Array;
    y?: Uint8Array;
  }): { public: Buffer; sensitive: Buffer };
  /** Every code the native layer knows, frozen: the same set as ERROR_CODES in errors.ts. */
  readonly errorCodes: readonly string[];
}

/**
 * Where the addon may be, best first: a build from source (npm rebuild, or an install
 * where no prebuild fitted), the prebuild for this platform, arch and libc that ships
 * in the package (prebuilds/, found the way node-gyp-build finds it), then the
 * cmake-js builds. TPM_JWT_ADDON names a build to use instead.
 */
function candidates(require: NodeJS.Require, failures: string[]): string[] {
  const root = packageRoot();
  const override = process.env['TPM_JWT_ADDON'];
  if (override) return [path.resolve(override)];
  const found: string[] = [];
  try {
    found.push((require('node-gyp-build') as { path(dir: string): string }).path(root));
  } catch (err) {
    failures.push(`no build in ${path.join(root, 'build')} and no prebuild: ${(err as Error).message.split('\n')[0]}`);
  }
  found.push(path.join(root, 'build-cmake', 'Release', 'tpm_jwt.node'));
  found.push(path.join(root, 'build-cmake', 'Debug', 'tpm_jwt.node'));
  return found;
}

function loadError(failures: string[]): TpmJwtError {
  return new TpmJwtError(
    'ERR_NATIVE_ADDON',
    [
      'tpm-jwt could not load its native addon (tpm_jwt.node).',
      ...failures.map((f) => `  - ${f}`),
      'Possible causes and fixes:',
      '  - The tpm2-tss runtime libraries are missing (a prebuild or build fails to load):',
      '    Debian/Ubuntu: apt-get install libtss2-esys-3.0.2-0 libtss2-sys1 libtss2-tctildr0 libtss2-mu0 libtss2-rc0',
      '    Fedora/RHEL: dnf install tpm2-tss',
      '  - No prebuild fits this platform (prebuilds: linux-x64 and linux-arm64, glibc): build',
      '    from source with `npm rebuild tpm-jwt` (needs libtss2-dev pkg-config g++ make python3).',
      '  - A build from source for another Node.js or platform: run `npm rebuild tpm-jwt`.',
    ].join('\n'),
  );
}

let loaded: NativeAddon | undefined;
let loadedFrom: string | undefined;

/** The file the addon was loaded from (after native() succeeded). */
export function nativePath(): string | undefined {
  return loadedFrom;
}

/** The addon, loaded on first use (jwt-only users never need it). Throws ERR_NATIVE_ADDON. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const file of candidates(require, failures)) {
    try {
      const addon = require(file) as NativeAddon;
      addon.setErrorClass(TpmJwtError);
      loaded = addon;
      loadedFrom = file;
      return addon;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failures.push(e.code === 'MODULE_NOT_FOUND' ? `${file}: not built` : `${file}: ${e.message.split('\n')[0]}`);
    }
  }
  throw loadError(failures);
}
