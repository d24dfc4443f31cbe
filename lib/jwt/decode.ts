/**
 * Reading and verifying JWTs (google.auth.jwt.decode / decode_header), with jose
 * doing the signature and claim checks. jose is loaded by the first decode(), not by
 * importing tpm-jwt: signing-only users never pay for it.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

import type { JSONWebKeySet, JWTPayload, ProtectedHeaderParameters } from 'jose';

import { ALGORITHMS, algorithmsForKey, isAlgorithm, type JwsAlgorithm } from '../algorithms.js';
import { invalidArgument, JOSE_ERROR_CODES, TpmJwtError } from '../errors.js';

/** PEM certificate or SPKI; a `{ kid: pem }` mapping; a list of PEMs; a JWKS; a KeyObject. */
export type Certs = string | readonly string[] | Readonly<Record<string, string>> | JSONWebKeySet | KeyObject;

export interface DecodeOptions {
  certs?: Certs;
  /** false: return the payload without checking anything (google-auth's verify=False). */
  verify?: boolean;
  audience?: string | readonly string[];
  clockSkewSeconds?: number;
  /** Allowed algorithms; defaults to all of RS256, PS256, ES256. Never HMAC or none. */
  algorithms?: readonly JwsAlgorithm[];
}

/** Longer tokens are refused unread: nothing legitimate comes close (Google's are < 2 KiB). */
const MAX_TOKEN_LENGTH = 64 * 1024;

const JOSE_CODES: ReadonlySet<string> = new Set(JOSE_ERROR_CODES);
const isJoseCode = (code: string): code is (typeof JOSE_ERROR_CODES)[number] => JOSE_CODES.has(code);

type Jose = typeof import('jose');

/** jose's error as ours, same code where the contract has it, else ERR_JWS_INVALID. */
function fromJose(err: unknown, jose: Jose): TpmJwtError {
  if (err instanceof TpmJwtError) return err;
  if (err instanceof jose.errors.JOSEError) {
    const code = isJoseCode(err.code) ? err.code : 'ERR_JWS_INVALID';
    return new TpmJwtError(code, err.message, { cause: err });
  }
  return new TpmJwtError('ERR_JWS_INVALID', (err as Error)?.message ?? String(err), { cause: err });
}

/** The protected header, unverified. Throws ERR_JWS_INVALID for anything not a JWS. */
export function decodeHeader(token: string): ProtectedHeaderParameters {
  if (typeof token !== 'string') throw new TpmJwtError('ERR_JWS_INVALID', 'the token must be a string');
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new TpmJwtError('ERR_JWS_INVALID', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
  }
  // As jose's decodeProtectedHeader does: the first segment, base64url JSON, an object.
  const segment = token.split('.', 1)[0]!;
  let header: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(segment)) throw new Error('not base64url');
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch (err) {
    throw new TpmJwtError('ERR_JWS_INVALID', 'the protected header is not base64url JSON', { cause: err });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new TpmJwtError('ERR_JWS_INVALID', 'the protected header is not a JSON object');
  }
  return header as ProtectedHeaderParameters;
}

function publicKeyFromPem(pem: string): KeyObject {
  try {
    return pem.includes('-----BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch (err) {
    throw invalidArgument(`certs: not a PEM certificate or public key (${(err as Error).message})`);
  }
}

const isJwks = (certs: object): certs is JSONWebKeySet => Array.isArray((certs as { keys?: unknown }).keys);

/**
 * The keys the token may be signed with, by the google-auth rules for `certs`. Unless the
 * token's kid picks one from a mapping, every key is a candidate, so keys of a type that
 * cannot verify `alg` are left out rather than tried: an EC certificate ahead of the RSA
 * one that signed an RS256 token must not end the search (google-auth tries every
 * certificate). A key the kid picks is the only candidate, tried whatever its type.
 */
function candidateKeys(certs: Certs, kid: string | undefined, alg: JwsAlgorithm): KeyObject[] {
  const fitting = (keys: KeyObject[]) => keys.filter((key) => algorithmsForKey(key).includes(alg));
  if (typeof certs === 'string') return fitting([publicKeyFromPem(certs)]);
  if (Array.isArray(certs)) return fitting((certs as readonly string[]).map(publicKeyFromPem));
  if (certs instanceof Object && 'asymmetricKeyType' in certs) return fitting([certs as KeyObject]);
  const mapping = certs as Readonly<Record<string, string>>;
  if (kid === undefined) return fitting(Object.values(mapping).map(publicKeyFromPem));
  if (!Object.hasOwn(mapping, kid)) {
    throw new TpmJwtError('ERR_JWKS_NO_MATCHING_KEY', `no certificate for key id ${kid}`);
  }
  return [publicKeyFromPem(mapping[kid]!)];
}

function checkAlgorithms(algorithms: readonly JwsAlgorithm[] | undefined): JwsAlgorithm[] {
  if (algorithms === undefined) return [...ALGORITHMS];
  if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every(isAlgorithm)) {
    throw invalidArgument(`algorithms must be a non-empty list of ${ALGORITHMS.join(', ')}`);
  }
  return [...algorithms];
}

/**
 * The verified payload. Requires `iat` and `exp` (as google-auth does), checks the
 * signature against `certs`, the audience when given, and the times with
 * `clockSkewSeconds` of slack. Throws TpmJwtError with jose's codes.
 */
export async function decode(token: string, options: DecodeOptions = {}): Promise<JWTPayload> {
  const header = decodeHeader(token);
  const jose = await import('jose');
  // A malformed payload is ERR_JWS_INVALID whatever the signature (google-auth parses
  // every segment before it verifies).
  let unverified: JWTPayload;
  try {
    unverified = jose.decodeJwt(token);
  } catch (err) {
    throw fromJose(err, jose);
  }
  if (options.verify === false) return unverified;
  const algorithms = checkAlgorithms(options.algorithms);
  if (typeof header.alg !== 'string' || !(algorithms as string[]).includes(header.alg)) {
    throw new TpmJwtError(
      'ERR_JOSE_ALG_NOT_ALLOWED',
      `alg ${String(header.alg)} is not allowed; expected ${algorithms.join(', ')}`,
    );
  }
  if (options.certs === undefined) throw invalidArgument('certs are required to verify a token');
  const skew = options.clockSkewSeconds ?? 0;
  if (!Number.isFinite(skew) || skew < 0) throw invalidArgument('clockSkewSeconds must be >= 0');
  const verifyOptions = {
    algorithms,
    clockTolerance: skew,
    requiredClaims: ['iat', 'exp'],
    ...(options.audience !== undefined && { audience: options.audience as string | string[] }),
  };

  let payload: JWTPayload | undefined;
  try {
    if (typeof options.certs === 'object' && isJwks(options.certs)) {
      ({ payload } = await jose.jwtVerify(token, jose.createLocalJWKSet(options.certs), verifyOptions));
    } else {
      // Like google-auth, any of several candidate keys may have signed it.
      let last: unknown;
      for (const key of candidateKeys(options.certs, header.kid, header.alg as JwsAlgorithm)) {
        try {
          ({ payload } = await jose.jwtVerify(token, key, verifyOptions));
          break;
        } catch (err) {
          if (!(err instanceof jose.errors.JWSSignatureVerificationFailed)) throw err;
          last = err;
        }
      }
      if (payload === undefined) {
        throw last ?? new TpmJwtError('ERR_JWKS_NO_MATCHING_KEY', `certs holds no key that can verify ${header.alg}`);
      }
    }
  } catch (err) {
    throw fromJose(err, jose);
  }
  // jose checks iat is a number; google-auth also refuses one in the future.
  const now = Math.floor(Date.now() / 1000);
  if ((payload.iat as number) > now + skew) {
    throw new TpmJwtError('ERR_JWT_CLAIM_VALIDATION_FAILED', 'the token was issued in the future (iat)');
  }
  return payload;
}
