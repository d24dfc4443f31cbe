/**
 * IAM's serviceAccounts.signBlob, done with the service account's own key in the TPM.
 * Cloud Storage signatures (V4 and V2 signed URLs, V4 POST policies) are RSASSA-PKCS1-v1_5
 * SHA-256 whichever key of the account made them, so a signature from the TPM key is
 * as good as the one IAM would return. GoogleAuth.sign reaches a custom AuthClient only
 * as a POST to `.../serviceAccounts/{email}:signBlob` through the client's request();
 * signBlobPayload recognises that call so TpmAuthClient can answer it without IAM.
 */
import type { Signer } from '../crypt/signer.js';
import { TpmJwtError } from '../errors.js';

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
 * The bytes to sign when `request` is IAM Credentials' signBlob for `email` with a
 * base64 `payload`, at any host (Storage passes its `signingEndpoint` option on to
 * GoogleAuth.sign); else undefined, and the request goes out as it is: signBlob for
 * another account, or a call of another shape (the legacy `bytesToSign`).
 */
export function signBlobPayload(request: SignBlobRequest, email: string): Uint8Array | undefined {
  if (request.method?.toUpperCase() !== 'POST' || request.url === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return undefined; // not a URL: not a signBlob call
  }
  const match = SIGN_BLOB_PATH.exec(url.pathname);
  if (!match || decodeURIComponent(match[1]!) !== email) return undefined;
  const body = typeof request.data === 'string' ? parseJson(request.data) : request.data;
  const payload = (body as { payload?: unknown } | undefined)?.payload;
  if (typeof payload !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) return undefined;
  return Buffer.from(payload, 'base64');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
