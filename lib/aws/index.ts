/** tpm-jwt/aws: AWS IAM Roles Anywhere credentials with the TPM key. */
export {
  createSession,
  rolesAnywhereCredentials,
  type AwsProcessCredentials,
  type RolesAnywhereOptions,
} from './roles-anywhere.js';
export { startAwsMetadataServer, type AwsMetadataServer, type AwsMetadataServerOptions } from './metadata-server.js';
