/**
 * Cloud Storage signatures made with the service account's own key in the TPM. IAM's
 * serviceAccounts.signBlob and Storage's signatures (V4 and V2 signed URLs, V4 POST
 * policies) are RSASSA-PKCS1-v1_5 SHA-256 whichever key of the account made them, so a
 * signature from the TPM key is as good as the one IAM would return. Here: signBlob
 * itself (the CLI's sign-blob, TpmAuthClient.sign); recognising IAM's signBlob call in
 * a request, so that TpmAuthClient answers it without IAM (how GoogleAuth.sign, and so
 * Storage's signed URLs, reach the TPM: tpmStorageOptions in tpm-auth-client.ts); and a
 * V4 signed URL built without @google-cloud/storage (the CLI's signed-url).
 */
import { createHash } from 'node:crypto';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { iamAccount } from './iam-credentials.js';

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
interface SignBlobRequest {
  method?: string | undefined;
  url?: string | URL | undefined;
  data?: unknown;
}

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
  if (iamAccount(url.pathname, 'signBlob') !== email) return undefined;
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

const STORAGE_ENDPOINT = 'https://storage.googleapis.com';
/** V4 signatures are valid for at most seven days. */
export const MAX_SIGNED_URL_SECONDS = 7 * 24 * 60 * 60;
/** What a URL alone can do; a resumable POST also needs a signed x-goog-resumable header. */
export const SIGNED_URL_METHODS = Object.freeze(['GET', 'HEAD', 'PUT', 'DELETE'] as const);

interface StorageUrlOptions {
  /** The service account whose key signs: the credential in the URL. */
  email: string;
  bucket: string;
  object: string;
  /** Default GET. */
  method?: string;
  /** Seconds from `now`, 1 to seven days. */
  expiresIn: number;
  /** Scheme and host the URL points at (default https://storage.googleapis.com). */
  endpoint?: string;
  /** When the URL becomes valid (default now). */
  now?: Date;
}

/** Percent-encodes all but A-Z a-z 0-9 - . _ ~ (RFC 3986 unreserved), as V4 requires. */
const encode = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The V4 signed URL for `method` on gs://bucket/object, signed by `signer` in the TPM:
 * the canonical request and string to sign of Google's V4 signing spec, built as
 * Storage's URLSigner builds them, so for the same time it is byte-for-byte what
 * file.getSignedUrl returns.
 * Throws ERR_INVALID_ARGUMENT for a bad option, ERR_JOSE_ALG_NOT_ALLOWED for a key that
 * does not sign RS256.
 */
export async function signStorageUrl(signer: Signer, options: StorageUrlOptions): Promise<string> {
  const method = (options.method ?? 'GET').toUpperCase();
  if (!(SIGNED_URL_METHODS as readonly string[]).includes(method)) {
    throw invalidArgument(`method must be one of ${SIGNED_URL_METHODS.join(', ')}`);
  }
  if (!options.bucket || !options.object) throw invalidArgument('a signed URL needs a bucket and an object');
  const { expiresIn } = options;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_SIGNED_URL_SECONDS) {
    throw invalidArgument(`expiry must be 1 to ${MAX_SIGNED_URL_SECONDS} seconds`);
  }
  let endpoint: URL;
  try {
    endpoint = new URL(options.endpoint ?? STORAGE_ENDPOINT);
  } catch {
    throw invalidArgument(`endpoint ${options.endpoint} is not a URL`);
  }
  if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') {
    throw invalidArgument('endpoint must be an http(s) URL');
  }

  const timestamp = (options.now ?? new Date()).toISOString().replace(/[-:]|\.\d+/g, ''); // 20250101T000000Z
  const scope = `${timestamp.slice(0, 8)}/auto/storage/goog4_request`;
  const path = `/${encode(options.bucket)}/${options.object.split('/').map(encode).join('/')}`;
  const query = Object.entries({
    'X-Goog-Algorithm': 'GOOG4-RSA-SHA256',
    'X-Goog-Credential': `${options.email}/${scope}`,
    'X-Goog-Date': timestamp,
    'X-Goog-Expires': String(expiresIn),
    'X-Goog-SignedHeaders': 'host',
  })
    .map(([name, value]) => [encode(name), encode(value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  // The host without its port, as Storage's URLSigner signs it (GCS serves on 443).
  const canonicalRequest = [method, path, query, `host:${endpoint.hostname}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = [
    'GOOG4-RSA-SHA256',
    timestamp,
    scope,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  const signature = Buffer.from(await signBlob(signer, stringToSign), 'base64').toString('hex');
  return `${endpoint.origin}${path}?${query}&X-Goog-Signature=${signature}`;
}
