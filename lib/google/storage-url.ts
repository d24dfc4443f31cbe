/**
 * A Cloud Storage V4 signed URL (GOOG4-RSA-SHA256) made without @google-cloud/storage,
 * for the CLI: the canonical request and string to sign of Google's V4 signing spec,
 * built the way Storage's URLSigner builds them, so for the same time the URL is
 * byte-for-byte what file.getSignedUrl returns.
 */
import { createHash } from 'node:crypto';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { signBlob } from './sign-blob.js';

export const STORAGE_ENDPOINT = 'https://storage.googleapis.com';
/** V4 signatures are valid for at most seven days. */
export const MAX_SIGNED_URL_SECONDS = 7 * 24 * 60 * 60;
/** What a URL alone can do; a resumable POST also needs a signed x-goog-resumable header. */
export const SIGNED_URL_METHODS = Object.freeze(['GET', 'HEAD', 'PUT', 'DELETE'] as const);

export interface StorageUrlOptions {
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
 * The V4 signed URL for `method` on gs://bucket/object, signed by `signer` in the TPM.
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
