/**
 * Key attestation, the device's side. An attestation key (AK) in the endorsement
 * hierarchy certifies a signing key (TPM2_Certify), and the document carries what a
 * verifier needs to trust the AK: the TPM's EK certificates (and a platform's AK
 * certificate where there is one). Credential activation (TPM2_ActivateCredential)
 * then proves to a verifier that the AK lives in the TPM those certificates name.
 * Each call opens its own TPM connection and closes it.
 */
import { readFile } from 'node:fs/promises';
import { createPublicKey, type KeyObject } from 'node:crypto';

import { TPM2_ALG } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { keyThumbprint } from '../jwk.js';
import { native, type NativeAkSpec, type NativeContext, type NativeEkSpec, type NativeKeyRef } from '../native.js';
import { readNvCertificates, type NvCertificates } from './attest-nv.js';
import {
  ATTESTATION_FORMAT,
  base64Field,
  CHALLENGE_FORMAT,
  keyBinding,
  parseNonce,
  readDocument,
  RESPONSE_FORMAT,
  type ActivationChallenge,
  type ActivationResponse,
  type AttestationDocument,
} from './attestation-format.js';
import { withAuth } from './auth.js';
import {
  formatHandle,
  OWNER_HIERARCHY,
  parseKeyRef,
  parsePersistentHandle,
  PERSISTENT_FIRST,
  PERSISTENT_LAST,
} from './handle.js';
import { isKeyFilePem } from './key-file.js';
import { describeKey, leftPad } from './public-key.js';
import { resolveTcti } from './tcti.js';

/** The TPM connection an attestation call opens (as Tpm.open takes them). */
export interface AttestationTpmOptions {
  tcti?: string;
  /** Encrypt what crosses the TPM link (default true). */
  encrypt?: boolean;
  /** The owner hierarchy's authValue (persisting an AK, owner-readable NV). */
  ownerAuth?: string | Uint8Array;
  retryTimeoutMs?: number;
}

/** Which AK to use: the standard template of `akType`, or the one persisted at `akHandle`. */
export interface AttestationKeyOptions {
  /** 'rsa' (default: RSA 2048 RSASSA-SHA256) or 'ecc' (P-256 ECDSA-SHA256). */
  akType?: 'rsa' | 'ecc';
  /**
   * Persistent handle for the AK: an AK there is reused, an empty handle gets one, anything
   * else is ERR_TPM_HANDLE_IN_USE unless `force`. Default: a transient AK, flushed after.
   */
  akHandle?: number | string;
  /** Replace the object at `akHandle`. */
  force?: boolean;
}

export interface AttestKeyOptions extends AttestationTpmOptions, AttestationKeyOptions {
  /** KEYREF of the key to attest: `handle:0x81000010`, bare hex, or a TSS2 key file path. */
  key: string;
  /** The key's authValue (TPM2_Certify uses the key in the ADMIN role). */
  auth?: string | Uint8Array;
  /** The verifier's nonce (hex or 1 to 64 bytes): the qualifying data, as it is. */
  nonce?: string | Uint8Array;
  /** The key id the qualifying data binds when there is no nonce; default the JWK thumbprint. */
  kid?: string;
  /** The service account the qualifying data binds when there is no nonce. */
  email?: string;
  /** PEM intermediate certificates to add to the EK chain the TPM's NV holds. */
  ekChain?: string;
}

export interface ActivateCredentialOptions extends AttestationTpmOptions, AttestationKeyOptions {
  /** The EK's persistent handle; default: found by its public key, or made from the TCG template. */
  ekHandle?: number | string;
}

const AK_TYPES = { rsa: TPM2_ALG.RSA, ecc: TPM2_ALG.ECC } as const;
/** The TCG provisioning guidance's range for persistent EKs. */
const EK_HANDLES_FIRST = 0x81010000;

async function withTpmContext<T>(
  options: AttestationTpmOptions,
  use: (context: NativeContext) => Promise<T>,
): Promise<T> {
  if (options.encrypt !== undefined && typeof options.encrypt !== 'boolean') {
    throw invalidArgument('encrypt must be a boolean');
  }
  const tcti = resolveTcti(options.tcti);
  const retryTimeoutMs = options.retryTimeoutMs ?? 5000;
  return withAuth(
    options.ownerAuth,
    async (ownerAuth) => {
      const context = new (native().Context)();
      try {
        await context.open(tcti, ownerAuth, { encrypt: options.encrypt ?? true }, retryTimeoutMs);
        return await use(context);
      } finally {
        await context.close();
      }
    },
    'ownerAuth',
  );
}

function akType(options: AttestationKeyOptions): 'rsa' | 'ecc' {
  const type = options.akType ?? 'rsa';
  if (type !== 'rsa' && type !== 'ecc') throw invalidArgument("akType must be 'rsa' or 'ecc'");
  return type;
}

/** The AK of the options, on the platform's AK template when its NV has one. */
function akSpec(options: AttestationKeyOptions, type: 'rsa' | 'ecc', nv: NvCertificates): NativeAkSpec {
  return {
    type: AK_TYPES[type],
    ...(nv.ak.template && { template: nv.ak.template }),
    ...(options.akHandle !== undefined && { handle: parsePersistentHandle(options.akHandle, 'akHandle') }),
    force: options.force === true,
  };
}

/** The key a KEYREF names, as the addon takes it, and its public area. */
async function keyOf(
  context: NativeContext,
  ref: string,
  auth: Uint8Array | undefined,
): Promise<{ key: NativeKeyRef; publicArea: Uint8Array }> {
  if (typeof ref !== 'string') throw invalidArgument('key must be a KEYREF string');
  const parsed = parseKeyRef(ref);
  if ('handle' in parsed) {
    return {
      key: { handle: parsed.handle, ...(auth && { auth }) },
      publicArea: await context.readPublic(parsed.handle),
    };
  }
  let text: string;
  try {
    text = await readFile(parsed.path, 'utf8');
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read key file ${parsed.path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!isKeyFilePem(text))
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${parsed.path} is not a TSS2 PRIVATE KEY file`);
  const { decodeKeyFile } = await import('./key-file-reader.js');
  const file = decodeKeyFile(text);
  if (file.parent !== OWNER_HIERARCHY && (file.parent < PERSISTENT_FIRST || file.parent > PERSISTENT_LAST)) {
    throw new TpmJwtError('ERR_TPM_UNSUPPORTED', `key file parent ${formatHandle(file.parent)} is not supported`);
  }
  return {
    key: { parent: file.parent, public: file.public, private: file.private, ...(auth && { auth }) },
    publicArea: file.public,
  };
}

function chainFrom(pem: string | undefined): string[] {
  if (pem === undefined) return [];
  if (typeof pem !== 'string') throw invalidArgument('ekChain must be PEM text');
  const certificates = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certificates.length === 0) throw invalidArgument('ekChain holds no PEM certificate');
  return certificates.map((c) => `${c}\n`);
}

/**
 * Certifies a TPM key with an AK and returns the attestation document: the certify
 * info and signature, the AK's and the key's public areas, and the EK certificates
 * (with their chain) from the TPM's NV. The qualifying data is the nonce, or without
 * one a hash binding the kid and email. Throws ERR_INVALID_ARGUMENT, ERR_KEY_FILE_INVALID,
 * ERR_TPM_HANDLE_IN_USE (akHandle), ERR_TPM_UNSUPPORTED (no EK certificate) and the TPM's codes.
 */
export async function attestKey(options: AttestKeyOptions): Promise<AttestationDocument> {
  const type = akType(options);
  const nonce = options.nonce === undefined ? undefined : parseNonce(options.nonce);
  const extraChain = chainFrom(options.ekChain);
  if (options.email !== undefined && typeof options.email !== 'string') throw invalidArgument('email must be a string');
  if (options.kid !== undefined && (typeof options.kid !== 'string' || options.kid === '')) {
    throw invalidArgument('kid must be a non-empty string');
  }
  return withAuth(options.auth, (auth) =>
    withTpmContext(options, async (context) => {
      const nv = await readNvCertificates(context, type);
      if (nv.ek.length === 0) {
        throw new TpmJwtError(
          'ERR_TPM_UNSUPPORTED',
          'the TPM holds no EK certificate in NV (0x01c00002, 0x01c0000a, ...): nothing can vouch for it',
        );
      }
      const { key, publicArea } = await keyOf(context, options.key, auth);
      const kid = options.kid ?? keyThumbprint(describeKey(native().describePublic(publicArea)).publicKey);
      const qualifyingData = nonce ?? keyBinding(kid, options.email);
      const ak = akSpec(options, type, nv);
      const certified = await context.certify(key, ak, qualifyingData);
      return {
        format: ATTESTATION_FORMAT,
        kid,
        ...(options.email !== undefined && { email: options.email }),
        key: { public: certified.keyPublic.toString('base64') },
        certify: { attest: certified.attest.toString('base64'), signature: certified.signature.toString('base64') },
        ak: {
          public: certified.akPublic.toString('base64'),
          ...(ak.handle !== undefined && { handle: formatHandle(ak.handle) }),
          ...(nv.ak.certificate && { certificate: nv.ak.certificate }),
        },
        ek: { certificates: nv.ek, chain: [...nv.chain, ...extraChain] },
      };
    }),
  );
}

/** tpm2_makecredential's output file: a magic, a version, then the two TPM2Bs. */
function credentialFile(bytes: Uint8Array): { blob: Buffer; secret: Buffer } | undefined {
  const b = Buffer.from(bytes);
  if (b.length < 12 || b.readUInt32BE(0) !== 0xbadcc0de || b.readUInt32BE(4) !== 1) return undefined;
  const blobEnd = 10 + b.readUInt16BE(8);
  if (blobEnd + 2 > b.length) return undefined;
  const secretEnd = blobEnd + 2 + b.readUInt16BE(blobEnd);
  if (secretEnd !== b.length) return undefined;
  return { blob: b.subarray(8, blobEnd), secret: b.subarray(blobEnd, secretEnd) };
}

/** The EK's public key as a TPM unique field: RSA modulus, or ECC x || y at full width. */
function uniqueOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty === 'RSA') return Buffer.from(jwk.n!, 'base64url');
  const size = { 'P-256': 32, 'P-384': 48, 'P-521': 66 }[jwk.crv ?? ''];
  if (jwk.kty !== 'EC' || !size)
    throw new TpmJwtError('ERR_TPM_UNSUPPORTED', `an EK on curve ${jwk.crv} is not supported`);
  return Buffer.concat([
    leftPad(Buffer.from(jwk.x!, 'base64url'), size),
    leftPad(Buffer.from(jwk.y!, 'base64url'), size),
  ]);
}

/**
 * The EK the credential is encrypted to: a persistent EK with that public key, else the
 * primary from the TCG default template (which LoadEk checks against it).
 */
async function ekSpec(
  context: NativeContext,
  ekKey: KeyObject | undefined,
  handle: number | undefined,
): Promise<NativeEkSpec> {
  const type = ekKey?.asymmetricKeyType === 'ec' ? TPM2_ALG.ECC : TPM2_ALG.RSA;
  const unique = ekKey && uniqueOf(ekKey);
  if (handle !== undefined) return { type, handle, ...(unique && { unique }) };
  if (!unique) return { type };
  for (const candidate of await context.handles(EK_HANDLES_FIRST, 32)) {
    if (candidate > EK_HANDLES_FIRST + 0xff) break;
    const info = native().describePublic(await context.readPublic(candidate));
    const size = unique.length / 2;
    const own = info.rsa
      ? info.rsa.modulus
      : info.ecc && Buffer.concat([leftPad(info.ecc.x, size), leftPad(info.ecc.y, size)]);
    if (own && Buffer.compare(Buffer.from(own), unique) === 0) return { type, handle: candidate, unique };
  }
  return { type, unique };
}

/** What a challenge asks of the device; the AK type and handle default to the options'. */
interface ReadChallenge {
  blob: Buffer;
  encrypted: Buffer;
  /** Absent for a tpm2_makecredential file, which names neither the AK nor the EK. */
  akName?: Buffer;
  ekKey?: KeyObject;
  akType: 'rsa' | 'ecc';
  akHandle?: number | string;
}

function readChallenge(
  challenge: ActivationChallenge | string | Uint8Array,
  options: AttestationKeyOptions,
): ReadChallenge {
  const own = { akType: akType(options), ...(options.akHandle !== undefined && { akHandle: options.akHandle }) };
  const file = challenge instanceof Uint8Array ? credentialFile(challenge) : undefined;
  if (file) return { blob: file.blob, encrypted: file.secret, ...own };
  const doc = readDocument<ActivationChallenge>(
    challenge instanceof Uint8Array ? Buffer.from(challenge).toString('utf8') : challenge,
    CHALLENGE_FORMAT,
    'activation challenge',
  );
  if (typeof doc.ak?.name !== 'string' || !/^([0-9a-f]{2})+$/i.test(doc.ak.name)) {
    throw invalidArgument('ak.name must be hex');
  }
  const spki = base64Field(doc.ek?.publicKey, 'ek.publicKey');
  let ekKey: KeyObject;
  try {
    ekKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw invalidArgument('ek.publicKey is not an SPKI public key');
  }
  const akHandle = options.akHandle ?? doc.ak.handle;
  return {
    blob: base64Field(doc.credentialBlob, 'credentialBlob'),
    encrypted: base64Field(doc.encryptedSecret, 'encryptedSecret'),
    akName: Buffer.from(doc.ak.name, 'hex'),
    ekKey,
    akType: options.akType === undefined ? akType({ akType: doc.ak.type }) : own.akType,
    ...(akHandle !== undefined && { akHandle }),
  };
}

/**
 * The device's half of credential activation: recovers the secret of a challenge (from
 * createActivationChallenge, as an object or JSON, or tpm2_makecredential's output
 * file) with the AK and the EK, and returns the response for the verifier. Throws
 * ERR_INVALID_ARGUMENT for a malformed challenge, ERR_TPM_KEY_NOT_FOUND when this TPM
 * does not have the AK or the EK it names, and the TPM's codes.
 */
export async function activateCredential(
  challenge: ActivationChallenge | string | Uint8Array,
  options: ActivateCredentialOptions = {},
): Promise<ActivationResponse> {
  const read = readChallenge(challenge, options);
  const ekHandle = options.ekHandle === undefined ? undefined : parsePersistentHandle(options.ekHandle, 'ekHandle');
  return withTpmContext(options, async (context) => {
    const nv = await readNvCertificates(context, read.akType);
    const ak = akSpec({ ...options, ...(read.akHandle !== undefined && { akHandle: read.akHandle }) }, read.akType, nv);
    const ek = await ekSpec(context, read.ekKey, ekHandle);
    const secret = await context.activateCredential(ak, read.akName, ek, read.blob, read.encrypted);
    try {
      return { format: RESPONSE_FORMAT, secret: secret.toString('base64') };
    } finally {
      secret.fill(0);
    }
  });
}
