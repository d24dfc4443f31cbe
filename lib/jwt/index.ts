/** The google.auth.jwt API with JavaScript names: import { jwt } from 'tpm-jwt'. */
export { encode, type EncodeOptions } from './encode.js';
export { decode, decodeHeader, type Certs, type DecodeOptions } from './decode.js';
export { Credentials, type CredentialsOptions } from './credentials.js';
export { REFRESH_THRESHOLD_SECONDS } from './token-cache.js';
export type { HeaderBag } from './signing-credentials.js';
export { OnDemandCredentials, audienceForUrl, type OnDemandCredentialsOptions } from './on-demand-credentials.js';
