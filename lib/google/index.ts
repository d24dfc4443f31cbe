/**
 * tpm-jwt/google: what needs google-auth-library (an optional peer dependency), kept
 * out of the root entry so that JWT-only users never load it.
 */
export {
  TpmAuthClient,
  tpmStorageOptions,
  type TpmAuthClientOptions,
  type TpmStorageOptions,
} from './tpm-auth-client.js';
export { CLOUD_PLATFORM_SCOPE, type TpmAuthMode } from './token-sources.js';
export { tpmSubjectTokenSupplier, TpmIdentityPoolClient, type TpmSubjectTokenOptions } from './wif-client.js';
