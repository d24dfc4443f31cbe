/**
 * The one way to build a Cloud Storage client whose signed URLs and POST policies are
 * signed in the TPM. Storage signs through the GoogleAuth it wraps around `authClient`:
 * GoogleAuth.sign takes the account's email from getCredentials(), which reads only the
 * `credentials` JSON (or the GCE metadata server), never the client; then it POSTs IAM
 * signBlob for that email through the client's request(), which TpmAuthClient answers by
 * signing in the TPM (sign-blob.ts). `credentials` holds no key: `authClient` still
 * authorises every call, because GoogleAuth uses a given client before any JSON.
 */
import type { TpmAuthClient } from './tpm-auth-client.js';

/** What tpmStorageOptions returns: spread it into `new Storage({...})` options. */
export interface TpmStorageOptions {
  /**
   * The TpmAuthClient, typed to fit any Storage: Storage 7 and 8 declare `authClient` with
   * their own nested google-auth-library, and a client built on another copy (the one
   * tpm-jwt sees) does not type-check there though it works.
   */
  authClient: any;
  /** Only the email (and universe) GoogleAuth.getCredentials() reports: no private key. */
  credentials: { client_email: string; universe_domain: string };
  projectId?: string;
}

/**
 * Options for `new Storage({ ...tpmStorageOptions(client), ...yours })` (Storage 7 and 8,
 * google-auth-library 9, 10, 11) with which getSignedUrl and generateSignedPostPolicyV4
 * sign in the TPM and never call IAM. Signing fails as Storage's SigningError unless the
 * key signs RS256.
 */
export function tpmStorageOptions(client: TpmAuthClient): TpmStorageOptions {
  return {
    authClient: client,
    credentials: { client_email: client.email, universe_domain: client.universeDomain },
    ...(client.projectId ? { projectId: client.projectId } : {}),
  };
}
