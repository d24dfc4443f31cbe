/** One connection to a TPM and the keys made, loaded and evicted through it. */
import {
  algorithmInfo,
  ALGORITHMS,
  isRsaKeySize,
  RSA_KEY_SIZES,
  tpmKeySpec,
  type JwsAlgorithm,
  type RsaKeySize,
} from '../algorithms.js';
import { hexBytes } from '../encoding.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { native, type NativeContext, type NativeKeyRef, type SrkState } from '../native.js';
import { withAuth } from './auth.js';
import { formatHandle, OWNER_HIERARCHY, parsePersistentHandle, PERSISTENT_FIRST, PERSISTENT_LAST } from './handle.js';
import type { ImportSource } from './import.js';
import { isKeyFilePem } from './key-file.js';
import { checkPcrs, fromPolicyCommands, nativePolicy, type PcrSelection } from './pcrs.js';
import { makeTpmKey, type TpmKey } from './key.js';
import { readPublicArea } from './public-area.js';
import { resolveTcti } from './tcti.js';

export interface TpmOpenOptions {
  /** A tctildr string (`device:/dev/tpmrm0`, `swtpm:host=...,port=2321`, ...). */
  tcti?: string;
  /** The owner hierarchy's authValue. */
  ownerAuth?: string | Uint8Array;
  /**
   * Encrypt what crosses the TPM link (default true): a salted HMAC session with
   * AES-128-CFB parameter encryption authorises every command, so auth values and
   * digests are never sent in clear.
   */
  encrypt?: boolean;
  /** The key the session is salted with: the owner's storage primary (default) or the EK. */
  saltKey?: 'primary' | 'ek';
  /** Pins the salt key's Name (hex or bytes): another TPM fails with ERR_TPM_CONNECTION. */
  saltKeyName?: string | Uint8Array;
  /**
   * How long a call waits, ms, when the TPM's object or session slots are all taken
   * (default 5000). Without a resource manager (swtpm, /dev/tpm0) other processes hold
   * them for a moment; the call then fails with ERR_TPM_OBJECT_MEMORY.
   */
  retryTimeoutMs?: number;
  /**
   * How long one TPM command may take, ms, before the call fails with ERR_TPM_TIMEOUT
   * (default 120000: RSA key generation on a slow chip takes seconds). The next call
   * reconnects. Enforced on swtpm links, which tpm-jwt drives itself; every other TCTI
   * (a device, whose kernel driver has its own limits; mssim; tabrmd) keeps its own.
   */
  commandTimeoutMs?: number;
}

export interface CreateKeyOptions {
  alg: JwsAlgorithm;
  /** RSA modulus size: 2048 (default) or 3072. */
  bits?: RsaKeySize;
  /** The key's authValue. */
  auth?: string | Uint8Array;
  /** Persistent handle (0x81xxxxxx) to store the key at. */
  persist?: number;
  /** Replace an object already persisted at `persist`. */
  force?: boolean;
  /**
   * Binds the key to these PCRs' current values: it signs only while they hold them
   * (PolicyPCR; with `auth`, PolicyAuthValue too). The auth value alone never suffices.
   */
  pcrs?: PcrSelection;
}

export interface ImportKeyOptions {
  /** Persistent handle (0x81xxxxxx) to store the imported key at. */
  persist?: number;
  /** Replace an object already persisted at `persist`. */
  force?: boolean;
  /** The authValue the imported key gets. */
  auth?: string | Uint8Array;
}

export interface LoadKeyOptions {
  auth?: string | Uint8Array;
  /** For a persistent key made with `pcrs`: the same selection (key files record it). */
  pcrs?: PcrSelection;
}

/** How a key is authorised: its auth value, and its PCR policy when it has one. */
type KeyUse = Pick<NativeKeyRef, 'auth' | 'policy'>;

function sessionOptions(options: TpmOpenOptions) {
  if (options.encrypt !== undefined && typeof options.encrypt !== 'boolean') {
    throw invalidArgument('encrypt must be a boolean');
  }
  if (options.saltKey !== undefined && options.saltKey !== 'primary' && options.saltKey !== 'ek') {
    throw invalidArgument("saltKey must be 'primary' or 'ek'");
  }
  let saltKeyName: Uint8Array | undefined;
  if (typeof options.saltKeyName === 'string') {
    saltKeyName = hexBytes(options.saltKeyName);
    if (!saltKeyName) throw invalidArgument('saltKeyName must be hex');
  } else if (options.saltKeyName !== undefined) {
    if (!(options.saltKeyName instanceof Uint8Array)) throw invalidArgument('saltKeyName must be hex or bytes');
    saltKeyName = options.saltKeyName;
  }
  return {
    encrypt: options.encrypt ?? true,
    ...(options.saltKey !== undefined && { saltKey: options.saltKey }),
    ...(saltKeyName !== undefined && { saltKeyName }),
  };
}

/**
 * @internal The addon context `tpm` makes its calls on (closed with the Tpm), for library
 * code that makes its own addon calls on a connection (attestation).
 */
export let tpmContext: (tpm: Tpm) => NativeContext;

/** A time option of Tpm.open in ms, at most ten minutes: its value, or `fallback`. */
function milliseconds(
  options: TpmOpenOptions,
  name: 'retryTimeoutMs' | 'commandTimeoutMs',
  fallback: number,
  least: number,
): number {
  const value = options[name] ?? fallback;
  if (!Number.isInteger(value) || value < least || value > 600_000) {
    throw invalidArgument(`${name} must be an integer from ${least} to 600000`);
  }
  return value;
}

export class Tpm {
  /** The TCTI in use ('' when tpm2-tss searched its defaults). */
  readonly tcti: string;
  /** The Name (hex) of the key the session was salted with; '' when not encrypting. */
  readonly saltKeyName: string;
  readonly #context: NativeContext;
  #closing: Promise<void> | undefined;

  static {
    tpmContext = (tpm) => tpm.#context;
  }

  private constructor(context: NativeContext, tcti: string, saltKeyName: string) {
    this.#context = context;
    this.tcti = tcti;
    this.saltKeyName = saltKeyName;
  }

  /**
   * Connects to the TPM (option `tcti` > TPM2TOOLS_TCTI > TSS2_TCTI > tpm2-tss's
   * search). Throws ERR_TPM_CONNECTION when it cannot be reached.
   */
  static async open(options: TpmOpenOptions = {}): Promise<Tpm> {
    if (options.tcti !== undefined && typeof options.tcti !== 'string') {
      throw invalidArgument('tcti must be a string');
    }
    const tcti = resolveTcti(options.tcti);
    const session = sessionOptions(options);
    const retryTimeoutMs = milliseconds(options, 'retryTimeoutMs', 5000, 0);
    const commandTimeoutMs = milliseconds(options, 'commandTimeoutMs', 120_000, 1);
    return withAuth(
      options.ownerAuth,
      async (ownerAuth) => {
        const context = new (native().Context)();
        try {
          const { saltKeyName } = await context.open(tcti, ownerAuth, session, retryTimeoutMs, commandTimeoutMs);
          return new Tpm(context, tcti, saltKeyName.toString('hex'));
        } catch (err) {
          // The open failure is what the caller needs to see, not a failed cleanup.
          await context.close().catch(() => undefined);
          throw err;
        }
      },
      'ownerAuth',
    );
  }

  /**
   * Creates a signing key under the storage primary. With `persist` it is stored at
   * that handle (ERR_TPM_HANDLE_IN_USE if occupied, unless `force`).
   */
  createKey(options: CreateKeyOptions): Promise<TpmKey> {
    return withAuth(options?.auth, (auth) => this.#createKey(options, auth));
  }

  async #createKey(options: CreateKeyOptions, auth: Uint8Array | undefined): Promise<TpmKey> {
    const info = algorithmInfo(options?.alg);
    if (!info) throw invalidArgument(`alg must be one of ${ALGORITHMS.join(', ')}`);
    const bits = options.bits ?? RSA_KEY_SIZES[0];
    if (info.keyType === 'RSA' ? !isRsaKeySize(bits) : options.bits !== undefined) {
      throw invalidArgument(
        info.keyType === 'RSA' ? `bits must be ${RSA_KEY_SIZES.join(' or ')}` : `bits does not apply to ${info.alg}`,
      );
    }
    const policy = options.pcrs === undefined ? undefined : nativePolicy(checkPcrs(options.pcrs), !!auth?.length);
    const persist = options.persist === undefined ? undefined : parsePersistentHandle(options.persist, 'persist');
    // Refuse an occupied handle before the keygen, which takes seconds on real TPMs.
    if (persist !== undefined && !options.force) await this.#assertFree(persist);

    const blob = await this.#context.createKey(OWNER_HIERARCHY, tpmKeySpec(info, bits), auth, policy);
    return this.#keep(
      blob,
      { ...(auth && { auth }), ...(policy && { policy }) },
      info.alg,
      persist,
      options.force === true,
    );
  }

  /**
   * Imports an RSA (2048/3072) or EC P-256 private key, as PEM or a service-account
   * JSON, under the storage primary: afterwards only this TPM can use it. With
   * `persist` it is stored at that handle; otherwise `toPem()` gives its key file.
   * Throws ERR_TPM_UNSUPPORTED for other key types, ERR_KEY_FILE_INVALID for bad PEM.
   */
  importKey(source: ImportSource, options: ImportKeyOptions = {}): Promise<TpmKey> {
    return withAuth(options.auth, (auth) => this.#importKey(source, options, auth));
  }

  async #importKey(source: ImportSource, options: ImportKeyOptions, auth: Uint8Array | undefined): Promise<TpmKey> {
    const persist = options.persist === undefined ? undefined : parsePersistentHandle(options.persist, 'persist');
    if (persist !== undefined && !options.force) await this.#assertFree(persist);
    // Loaded here: the wrapping code is needed only by the few who import keys.
    const { importUnder } = await import('./import.js');
    const imported = await importUnder(this.#context, OWNER_HIERARCHY, source, auth);
    return this.#keep(imported, auth ? { auth } : {}, imported.alg, persist, options.force === true);
  }

  /**
   * Opens a key: persisted at a handle, or given as "TSS2 PRIVATE KEY" PEM text (loaded
   * once here to prove it belongs to this TPM and parent). Throws
   * ERR_TPM_KEY_NOT_FOUND for an empty handle, ERR_KEY_FILE_INVALID for a bad file or
   * one wrapped by another TPM or parent.
   */
  loadKey(key: number | string, options: LoadKeyOptions = {}): Promise<TpmKey> {
    return withAuth(options.auth, (auth) => this.#loadKey(key, options, auth));
  }

  async #loadKey(key: number | string, options: LoadKeyOptions, auth: Uint8Array | undefined): Promise<TpmKey> {
    if (typeof key === 'string' && isKeyFilePem(key)) {
      // The reader's ASN.1 library loads only for those who read key files.
      const { decodeKeyFile } = await import('./key-file-reader.js');
      const file = decodeKeyFile(key);
      const ownerOrPersistent =
        file.parent === OWNER_HIERARCHY || (file.parent >= PERSISTENT_FIRST && file.parent <= PERSISTENT_LAST);
      if (!ownerOrPersistent) {
        throw new TpmJwtError('ERR_TPM_UNSUPPORTED', `key file parent ${formatHandle(file.parent)} is not supported`);
      }
      const recorded = fromPolicyCommands(file.policy);
      const ref: NativeKeyRef = {
        parent: file.parent,
        public: file.public,
        private: file.private,
        ...(auth && { auth }),
        ...(recorded && { policy: nativePolicy(recorded.pcrs, recorded.authValue) }),
      };
      const info = readPublicArea(file.public);
      await this.#context.probe(ref);
      return makeTpmKey(this.#context, ref, info);
    }
    if (typeof key === 'string' && key.includes('-----BEGIN')) {
      throw new TpmJwtError(
        'ERR_KEY_FILE_INVALID',
        'expected a TSS2 PRIVATE KEY; a software private key must be imported into the TPM first',
      );
    }
    const persistent = parsePersistentHandle(key);
    const pcrs = options.pcrs === undefined ? undefined : checkPcrs(options.pcrs);
    const pub = await this.#context.readPublic(persistent);
    return makeTpmKey(
      this.#context,
      { handle: persistent, ...(auth && { auth }), ...(pcrs && { policy: nativePolicy(pcrs, !!auth?.length) }) },
      readPublicArea(pub),
    );
  }

  /** Removes the key persisted at `handle`. Throws ERR_TPM_KEY_NOT_FOUND if there is none. */
  async evict(handle: number | string): Promise<void> {
    await this.#context.evict(parsePersistentHandle(handle));
  }

  /**
   * The SRK: the owner's storage primary (the parent of key files and new keys, and the
   * session's salt key) persisted at 0x81000001, as the TCG provisioning guidance
   * places it. When it is there, opening a TPM and loading a key file create no primary
   * key (TPM2_CreatePrimary takes 100 ms or more on a chip). With `persist`, puts it
   * there; another object at the handle is ERR_TPM_HANDLE_IN_USE unless `force`.
   * Returns what the handle holds afterwards. Never persisted unless asked.
   */
  async srk(options: { persist?: boolean; force?: boolean } = {}): Promise<SrkState> {
    return this.#context.srk(options.persist === true, options.force === true);
  }

  /** The persistent handles in use. */
  async persistentHandles(): Promise<number[]> {
    return this.#context.handles(0x81000000, 256);
  }

  /** Releases the TPM. Calls not yet started reject with ERR_TPM_CLOSED. */
  close(): Promise<void> {
    this.#closing ??= this.#context.close();
    return this.#closing;
  }

  /** A key for new blobs under the storage primary, made persistent when asked. */
  async #keep(
    blob: { public: Uint8Array; private: Uint8Array },
    use: KeyUse,
    alg: JwsAlgorithm,
    persist: number | undefined,
    force: boolean,
  ): Promise<TpmKey> {
    let ref: NativeKeyRef = { parent: OWNER_HIERARCHY, public: blob.public, private: blob.private, ...use };
    if (persist !== undefined) {
      await this.#context.persist(ref, persist, force);
      ref = { handle: persist, ...use };
    }
    return makeTpmKey(this.#context, ref, readPublicArea(blob.public), alg);
  }

  async #assertFree(handle: number): Promise<void> {
    const [first] = await this.#context.handles(handle, 1);
    if (first === handle) {
      throw new TpmJwtError(
        'ERR_TPM_HANDLE_IN_USE',
        `handle ${formatHandle(handle)} already holds a persistent object; pass force to replace it`,
      );
    }
  }
}

/** Opens a Tpm with `options`, runs `use` on it, and closes it whatever happens. */
export async function usingTpm<T>(options: TpmOpenOptions, use: (tpm: Tpm) => Promise<T>): Promise<T> {
  const tpm = await Tpm.open(options);
  try {
    return await use(tpm);
  } finally {
    await tpm.close();
  }
}
