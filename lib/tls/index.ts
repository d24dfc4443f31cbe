/** tpm-jwt/tls: TLS client authentication with the TPM key. */
export { TpmTlsAgent, type TpmTlsAgentOptions } from './agent.js';
export { TpmTlsSocket, type TpmTlsOptions } from './tpm-tls-socket.js';
