/**
 * tpm-jwt/google: what needs google-auth-library (an optional peer dependency), kept
 * out of the root entry so that JWT-only users never load it.
 */
export { TpmAuthClient, CLOUD_PLATFORM_SCOPE, type TpmAuthClientOptions, type TpmAuthMode } from './tpm-auth-client.js';
export { tpmSubjectTokenSupplier, TpmIdentityPoolClient, type TpmSubjectTokenOptions } from './wif-client.js';
export { tpmStorageOptions, type TpmStorageOptions } from './storage-options.js';
