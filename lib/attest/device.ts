/**
 * Key attestation, the device's side. An attestation key (AK) in the endorsement
 * hierarchy certifies a signing key (TPM2_Certify), and the document carries what a
 * verifier needs to trust the AK: the TPM's EK certificates (and a platform's AK
 * certificate where there is one). Credential activation (TPM2_ActivateCredential)
 * then proves to a verifier that the AK lives in the TPM those certificates name.
 * Each call opens its own Tpm and closes it.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

import { anyCurve, TPM2_ALG } from '../algorithms.js';
import { hexBytes } from '../encoding.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { keyThumbprint } from '../jwk.js';
import type { NativeAkSpec, NativeContext, NativeEkSpec } from '../native.js';
import { formatHandle, parsePersistentHandle } from '../tpm/handle.js';
import { preparedKeyOf } from '../tpm/key.js';
import { loadKeyRef } from '../tpm/key-ref.js';
import { readPublicArea } from '../tpm/public-area.js';
import { tpmContext, usingTpm, type TpmOpenOptions } from '../tpm/tpm.js';
import {
  ATTESTATION_FORMAT,
  base64Field,
  certificatePems,
  CHALLENGE_FORMAT,
  keyBinding,
  parseNonce,
  readDocument,
  RESPONSE_FORMAT,
  type ActivationChallenge,
  type ActivationResponse,
  type AttestationDocument,
} from '../wire/attestation-format.js';
import { ecPoint, leftPad } from '../wire/public-key.js';
import type { TpmPublic } from '../wire/tpm-structures.js';
import { platformAkTemplate, readNvCertificates } from './nv-certificates.js';

/** The TPM connection an attestation call opens: Tpm.open's options. */
export type AttestationTpmOptions = TpmOpenOptions;

/** Which AK to use: the standard template of `akType`, or that AK persisted at `akHandle`. */
export interface AttestationKeyOptions {
  /** 'rsa' (default: RSA 2048 RSASSA-SHA256) or 'ecc' (P-256 ECDSA-SHA256). */
  akType?: 'rsa' | 'ecc';
  /**
   * Persistent handle of the AK. attestKey reuses the AK of `akType` there (an endorsement
   * primary from that template), persists one at an empty handle, and refuses anything
   * else with ERR_TPM_HANDLE_IN_USE unless `force`. activateCredential only uses the AK
   * there. Default: a transient AK from the template, flushed after.
   */
  akHandle?: number | string;
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
  /** Replace an object at `akHandle` that is not the AK of `akType`. */
  force?: boolean;
}

export interface ActivateCredentialOptions extends AttestationTpmOptions, AttestationKeyOptions {
  /** The EK's persistent handle; default: found by its public key, or made from the TCG template. */
  ekHandle?: number | string;
}

const AK_TYPES = { rsa: TPM2_ALG.RSA, ecc: TPM2_ALG.ECC } as const;
/** The TCG provisioning guidance's range for persistent EKs. */
const EK_HANDLES_FIRST = 0x81010000;

function akType(type: unknown = 'rsa'): 'rsa' | 'ecc' {
  if (type !== 'rsa' && type !== 'ecc') throw invalidArgument("akType must be 'rsa' or 'ecc'");
  return type;
}

/** The AK of `type`, on the platform's AK template when its NV has one. */
function akSpec(
  type: 'rsa' | 'ecc',
  template: Buffer | undefined,
  handle: number | undefined,
  force = false,
): NativeAkSpec {
  return {
    type: AK_TYPES[type],
    ...(template && { template }),
    ...(handle !== undefined && { handle }),
    ...(force && { force }),
  };
}

/** The PEM certificates of an EK chain; ERR_INVALID_ARGUMENT naming `what` when it holds none. */
export function chainCertificates(pem: string | undefined, what = 'ekChain'): string[] {
  if (pem === undefined) return [];
  if (typeof pem !== 'string') throw invalidArgument(`${what} must be PEM text`);
  const certificates = certificatePems(pem);
  if (certificates.length === 0) throw invalidArgument(`${what} holds no PEM certificate`);
  return certificates.map((c) => `${c}\n`);
}

/**
 * Certifies a TPM key with an AK and returns the attestation document: the certify
 * info and signature, the AK's and the key's public areas, and the EK certificates
 * (with their chain) from the TPM's NV, with a note for each NV index it skipped. The
 * qualifying data is the nonce, or without one a hash binding the kid and email. Throws
 * ERR_INVALID_ARGUMENT, ERR_KEY_FILE_INVALID, ERR_TPM_HANDLE_IN_USE (akHandle),
 * ERR_TPM_UNSUPPORTED (no readable EK certificate) and the TPM's codes.
 */
export async function attestKey(options: AttestKeyOptions): Promise<AttestationDocument> {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  const type = akType(options.akType);
  if (typeof options.key !== 'string') throw invalidArgument('key must be a KEYREF string');
  const nonce = options.nonce === undefined ? undefined : parseNonce(options.nonce);
  const extraChain = chainCertificates(options.ekChain);
  if (options.email !== undefined && typeof options.email !== 'string') throw invalidArgument('email must be a string');
  if (options.kid !== undefined && (typeof options.kid !== 'string' || options.kid === '')) {
    throw invalidArgument('kid must be a non-empty string');
  }
  const handle = options.akHandle === undefined ? undefined : parsePersistentHandle(options.akHandle, 'akHandle');
  return usingTpm(options, async (tpm) => {
    const context = tpmContext(tpm);
    const nv = await readNvCertificates(context, type);
    if (nv.ek.length === 0) {
      throw new TpmJwtError(
        'ERR_TPM_UNSUPPORTED',
        'the TPM holds no readable EK certificate in NV (0x01c00002, 0x01c0000a, ...): nothing can vouch for it' +
          (nv.notes.length > 0 ? ` (${nv.notes.join('; ')})` : '') +
          '. A TPM gets one from its maker; a swtpm when its state is made with swtpm_setup --tpm2 ' +
          '--create-ek-cert --create-platform-cert (as tpm-jwt simulate and tpm-jwt/testing do)',
      );
    }
    const key = await loadKeyRef(tpm, options.key, { ...(options.auth !== undefined && { auth: options.auth }) });
    const kid = options.kid ?? keyThumbprint(key.publicKey);
    const qualifyingData = nonce ?? keyBinding(kid, options.email);
    const certified = await context.certify(
      preparedKeyOf(key),
      akSpec(type, nv.ak.template, handle, options.force),
      qualifyingData,
    );
    return {
      format: ATTESTATION_FORMAT,
      kid,
      ...(options.email !== undefined && { email: options.email }),
      key: { public: certified.keyPublic.toString('base64') },
      certify: { attest: certified.attest.toString('base64'), signature: certified.signature.toString('base64') },
      ak: {
        public: certified.akPublic.toString('base64'),
        ...(handle !== undefined && { handle: formatHandle(handle) }),
        ...(nv.ak.certificate && { certificate: nv.ak.certificate }),
      },
      ek: { certificates: nv.ek, chain: [...nv.chain, ...extraChain] },
      ...(nv.notes.length > 0 && { notes: nv.notes }),
    };
  });
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
  const curve = jwk.kty === 'EC' ? anyCurve(jwk.crv) : undefined;
  if (!curve) throw new TpmJwtError('ERR_TPM_UNSUPPORTED', `an EK on curve ${jwk.crv} is not supported`);
  const { x, y } = ecPoint(jwk, curve.size);
  return Buffer.concat([x, y]);
}

/** A persistent object's unique field as uniqueOf gives it; undefined for an object that is no RSA or ECC key. */
function ownUnique(tpm2bPublic: Buffer, coordinateSize: number): Uint8Array | undefined {
  let pub: TpmPublic;
  try {
    pub = readPublicArea(tpm2bPublic, 'a persistent object');
  } catch (err) {
    if (err instanceof TpmJwtError) return undefined;
    throw err;
  }
  if (pub.rsa) return pub.rsa.modulus;
  return pub.ecc && Buffer.concat([leftPad(pub.ecc.x, coordinateSize), leftPad(pub.ecc.y, coordinateSize)]);
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
    const own = ownUnique(await context.readPublic(candidate), unique.length / 2);
    if (own && Buffer.compare(Buffer.from(own), unique) === 0) return { type, handle: candidate, unique };
  }
  return { type, unique };
}

/** What a challenge asks of the device. */
interface ReadChallenge {
  blob: Buffer;
  encrypted: Buffer;
  /** Absent for a tpm2_makecredential file, which names neither the AK nor the EK. */
  akName?: Buffer;
  ekKey?: KeyObject;
  /** The AK type the challenge names, when it names one. */
  akType?: 'rsa' | 'ecc';
  /** Where the attestation said the AK is persisted: only a hint. */
  akHandle?: number;
}

function readChallenge(challenge: ActivationChallenge | string | Uint8Array): ReadChallenge {
  const file = challenge instanceof Uint8Array ? credentialFile(challenge) : undefined;
  if (file) return { blob: file.blob, encrypted: file.secret };
  const doc = readDocument<ActivationChallenge>(
    challenge instanceof Uint8Array ? Buffer.from(challenge).toString('utf8') : challenge,
    CHALLENGE_FORMAT,
    'activation challenge',
  );
  const akName = hexBytes(doc.ak?.name);
  if (!akName) throw invalidArgument('ak.name must be hex');
  const spki = base64Field(doc.ek?.publicKey, 'ek.publicKey');
  let ekKey: KeyObject;
  try {
    ekKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw invalidArgument('ek.publicKey is not an SPKI public key');
  }
  return {
    blob: base64Field(doc.credentialBlob, 'credentialBlob'),
    encrypted: base64Field(doc.encryptedSecret, 'encryptedSecret'),
    akName,
    ekKey,
    akType: akType(doc.ak.type),
    ...(doc.ak.handle !== undefined && { akHandle: parsePersistentHandle(doc.ak.handle, 'the challenge ak.handle') }),
  };
}

/**
 * The device's half of credential activation: recovers the secret of a challenge (from
 * createActivationChallenge, as an object or JSON, or tpm2_makecredential's output file)
 * with the AK and the EK, and returns the response for the verifier. The AK is the one
 * the device's own options choose (the challenge's AK type is the default type): the
 * transient AK from the template, or the AK at `akHandle`; nothing is created at, persisted
 * to or evicted from a handle. Throws ERR_INVALID_ARGUMENT for a malformed challenge or
 * one naming another AK handle than `akHandle`, ERR_TPM_KEY_NOT_FOUND when this TPM does
 * not have the AK or the EK it names, and the TPM's codes.
 */
export async function activateCredential(
  challenge: ActivationChallenge | string | Uint8Array,
  options: ActivateCredentialOptions = {},
): Promise<ActivationResponse> {
  if ((options as { force?: unknown }).force !== undefined) {
    throw invalidArgument('force does not apply to activateCredential: it never replaces an object');
  }
  const read = readChallenge(challenge);
  const type = options.akType === undefined ? (read.akType ?? 'rsa') : akType(options.akType);
  const akHandle = options.akHandle === undefined ? undefined : parsePersistentHandle(options.akHandle, 'akHandle');
  if (akHandle !== undefined && read.akHandle !== undefined && read.akHandle !== akHandle) {
    throw invalidArgument(
      `the challenge is for an AK at ${formatHandle(read.akHandle)}; this device's AK is at ${formatHandle(akHandle)}`,
    );
  }
  const ekHandle = options.ekHandle === undefined ? undefined : parsePersistentHandle(options.ekHandle, 'ekHandle');
  return usingTpm(options, async (tpm) => {
    const context = tpmContext(tpm);
    const template = await platformAkTemplate(context, type);
    const ek = await ekSpec(context, read.ekKey, ekHandle);
    const secret = await context.activateCredential(
      akSpec(type, template, akHandle),
      read.akName,
      ek,
      read.blob,
      read.encrypted,
    );
    try {
      return { format: RESPONSE_FORMAT, secret: secret.toString('base64') };
    } finally {
      secret.fill(0);
    }
  });
}
