/**
 * tpm-jwt/metadata: a GCE-compatible metadata server backed by a TPM key. Its wif mode
 * loads google-auth-library (an optional peer dependency); oauth2 and jwt-access do not.
 */
export {
  startMetadataServer,
  type MetadataServer,
  type MetadataServerOptions,
  type MetadataTokenOptions,
} from './server.js';
