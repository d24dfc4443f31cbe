export { TpmJwtError, type TpmJwtErrorCode, type TpmJwtErrorOptions } from './errors.js';
export { ALGORITHMS, type JwsAlgorithm } from './algorithms.js';
export {
  Tpm,
  type TpmOpenOptions,
  type CreateKeyOptions,
  type LoadKeyOptions,
} from './tpm/tpm.js';
export { TpmKey, type SignOptions } from './tpm/key.js';
export type { KeyAttributes } from './tpm/public-key.js';
