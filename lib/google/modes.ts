/** The ways TpmAuthClient and the CLI turn a TPM key into a Bearer token (token-sources.ts). */
export const MODES = Object.freeze(['jwt-access', 'oauth2', 'id-token'] as const);
export type TpmAuthMode = (typeof MODES)[number];
