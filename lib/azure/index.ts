/** tpm-jwt/azure: Microsoft Entra certificate credentials signed in the TPM. */
export {
  azureAssertionCallback,
  azureClientAssertion,
  DEFAULT_AUTHORITY_HOST,
  type AzureClientAssertionOptions,
} from './client-assertion.js';
