/**
 * Every command by name, with the one line `tpm-jwt --help` shows; the rest of a
 * command (and what it imports: google-auth-library, certificates, ...) is loaded
 * only when that command runs.
 */
import type { Command } from '../command.js';

interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'keygen',
    summary: 'create a signing key inside the TPM',
    load: async () => (await import('./keygen.js')).keygen,
  },
  {
    name: 'import',
    summary: 'import a service-account key (or PEM private key) into the TPM',
    load: async () => (await import('./import.js')).importCommand,
  },
  { name: 'pubkey', summary: "print a TPM key's public key", load: async () => (await import('./pubkey.js')).pubkey },
  {
    name: 'cert',
    summary: 'print a self-signed X.509 certificate for a TPM key, signed in the TPM',
    load: async () => (await import('./cert.js')).cert,
  },
  {
    name: 'aws-credentials',
    summary: 'print AWS credentials from IAM Roles Anywhere, signed with a TPM key (credential_process)',
    load: async () => (await import('./aws-credentials.js')).awsCredentials,
  },
  {
    name: 'serve-aws-metadata',
    summary: 'serve Roles Anywhere credentials signed with a TPM key as IMDSv2 does, for AWS SDKs',
    load: async () => (await import('./serve-aws-metadata.js')).serveAwsMetadata,
  },
  {
    name: 'azure-assertion',
    summary: 'print a Microsoft Entra client assertion signed with a TPM key',
    load: async () => (await import('./azure-assertion.js')).azureAssertion,
  },
  {
    name: 'enroll',
    summary: 'enroll a TPM key with an enrollment server: attestation in, device certificate out',
    load: async () => (await import('./enroll.js')).enrollCommand,
  },
  {
    name: 'serve-enrollment',
    summary: 'serve enrollment: issue device certificates to keys a TPM attests (stateless, scales out)',
    load: async () => (await import('./serve-enrollment.js')).serveEnrollment,
  },
  {
    name: 'vault-login',
    summary: 'log in to HashiCorp Vault with a JWT signed by a TPM key, print the Vault token',
    load: async () => (await import('./vault-login.js')).vaultLoginCommand,
  },
  {
    name: 'csr',
    summary: 'print a PKCS#10 certification request for a TPM key, signed in the TPM',
    load: async () => (await import('./csr.js')).csr,
  },
  {
    name: 'inspect',
    summary: 'show what a TPM key is: algorithm, attributes, public key',
    load: async () => (await import('./inspect.js')).inspect,
  },
  {
    name: 'token',
    summary: 'mint a token: a self-signed JWT, or an OAuth access or ID token',
    load: async () => (await import('./token.js')).token,
  },
  {
    name: 'print-access-token',
    summary: 'print {access_token, expires_in, token_type}, as a credential helper does',
    load: async () => (await import('./print-access-token.js')).printAccessToken,
  },
  {
    name: 'wif-token',
    summary: 'print a Workload Identity Federation subject token, as an executable-sourced credential',
    load: async () => (await import('./wif-token.js')).wifToken,
  },
  {
    name: 'wif-config',
    summary: 'write the JWKS, credential configuration and gcloud commands for keyless federation',
    load: async () => (await import('./wif-config.js')).wifConfig,
  },
  {
    name: 'simulate',
    summary: 'run a software TPM (optionally manufactured, behind a chip profile and faults) for tests and CI',
    load: async () => (await import('./simulate.js')).simulateCommand,
  },
  {
    name: 'serve-metadata',
    summary: 'serve a GCE-compatible metadata server that mints from the TPM key, for every language',
    load: async () => (await import('./serve-metadata.js')).serveMetadata,
  },
  {
    name: 'verify',
    summary: "verify a JWT's signature and claims, print its claims",
    load: async () => (await import('./verify.js')).verify,
  },
  {
    name: 'evict',
    summary: 'remove a persistent key from the TPM',
    load: async () => (await import('./evict.js')).evict,
  },
  {
    name: 'srk',
    summary: 'show, or persist, the storage primary at 0x81000001 so that cold starts create no primary key',
    load: async () => (await import('./srk.js')).srk,
  },
  {
    name: 'sign-blob',
    summary: 'print the base64 RSA-SHA256 signature of a blob, as IAM signBlob does',
    load: async () => (await import('./sign-blob.js')).signBlobCommand,
  },
  {
    name: 'signed-url',
    summary: 'print a Cloud Storage V4 signed URL for an object, signed in the TPM',
    load: async () => (await import('./signed-url.js')).signedUrl,
  },
  {
    name: 'attest',
    summary: 'certify a TPM key with an attestation key, for a verifier; answer its activation challenge',
    load: async () => (await import('./attest.js')).attest,
  },
  {
    name: 'verify-attestation',
    summary: 'verify a key attestation against EK CA roots; print the verdict and the JWK',
    load: async () => (await import('./verify-attestation.js')).verifyAttestationCommand,
  },
];
