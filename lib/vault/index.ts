/** tpm-jwt/vault: HashiCorp Vault's JWT auth method with a JWT signed in the TPM. */
export { vaultLogin, type VaultAuth, type VaultLoginOptions } from './login.js';
