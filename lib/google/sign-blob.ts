/**
 * IAM's serviceAccounts.signBlob, done with the service account's own key in the TPM.
 * Cloud Storage signatures (V4 and V2 signed URLs, V4 POST policies) are RSASSA-PKCS1-v1_5
 * SHA-256 whichever key of the account made them, so a signature from the TPM key is
 * as good as the one IAM would return. GoogleAuth.sign reaches a custom AuthClient only
 * as a POST to `.../serviceAccounts/{email}:signBlob` through the client's request();
 * signBlobPayload recognises that call so TpmAuthClient can answer it without IAM.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';

/** The one JWS algorithm whose signature is what signBlob returns. */
const SIGN_BLOB_ALGORITHM = 'RS256';

/**
 * The base64 RSASSA-PKCS1-v1_5 SHA-256 signature of `blob` (a string is signed as UTF-8,
 * as GoogleAuth sends it). Throws ERR_JOSE_ALG_NOT_ALLOWED unless the signer is RS256.
 */
export async function signBlob(signer: Signer, blob: string | Uint8Array): Promise<string> {
  if (signer.algorithm !== SIGN_BLOB_ALGORITHM) {
    throw new TpmJwtError(
      'ERR_JOSE_ALG_NOT_ALLOWED',
      `signBlob and Cloud Storage signed URLs are RSA only (GOOG4-RSA-SHA256, RSASSA-PKCS1-v1_5 SHA-256): ` +
        `this key signs ${signer.algorithm}; use an RSA key signing RS256`,
    );
  }
  const bytes = typeof blob === 'string' ? Buffer.from(blob, 'utf8') : blob;
  return Buffer.from(await signer.sign(bytes)).toString('base64');
}

/** The parts of a gaxios request (google-auth-library 9, 10, 11) that name a signBlob call. */
export interface SignBlobRequest {
  method?: string | undefined;
  url?: string | URL | undefined;
  data?: unknown;
}

const SIGN_BLOB_PATH = /\/serviceAccounts\/([^/]+):signBlob$/;

/**
 * The bytes to sign when `request` is IAM signBlob for `email` (any endpoint: GoogleAuth
 * takes a custom signingEndpoint), else undefined: signBlob for another account is left
 * to IAM. Throws ERR_INVALID_ARGUMENT for such a call without a base64 `payload`.
 */
export function signBlobPayload(request: SignBlobRequest, email: string): Uint8Array | undefined {
  if (request.method?.toUpperCase() !== 'POST' || request.url === undefined) return undefined;
  let account: string | undefined;
  try {
    const match = SIGN_BLOB_PATH.exec(new URL(request.url).pathname);
    account = match ? decodeURIComponent(match[1]!) : undefined;
  } catch {
    return undefined; // not a URL, or not one IAM would take: not a signBlob call
  }
  if (account !== email) return undefined;
  const body = typeof request.data === 'string' ? parseJson(request.data) : request.data;
  const payload = (body as { payload?: unknown } | undefined)?.payload;
  if (typeof payload !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) {
    throw invalidArgument('a signBlob request needs a base64 payload');
  }
  return Buffer.from(payload, 'base64');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
