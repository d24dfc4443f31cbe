/** The google.auth.jwt API with JavaScript names: import { jwt } from 'tpm-jwt'. */
export { encode, type EncodeOptions } from './encode.js';
export { decode, decodeHeader, type Certs, type DecodeOptions } from './decode.js';
export { Credentials, REFRESH_THRESHOLD_SECONDS, type CredentialsOptions, type HeaderBag } from './credentials.js';
