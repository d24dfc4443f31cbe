/**
 * A public area as the device side reads it, from the TPM or a key file: decoded by the
 * one parser the verifier uses too (wire/tpm-structures.ts), failing with the codes a
 * key's user sees.
 */
import { parsePublic, type PublicAreaCodes, type TpmPublic } from '../wire/tpm-structures.js';

/** A malformed area is a bad key file; a well-formed one of another type, a key tpm-jwt cannot use. */
const DEVICE_CODES: PublicAreaCodes = { malformed: 'ERR_KEY_FILE_INVALID', otherType: 'ERR_TPM_UNSUPPORTED' };

/**
 * Decodes a marshaled TPM2B_PUBLIC. Throws ERR_KEY_FILE_INVALID when it is malformed,
 * ERR_TPM_UNSUPPORTED when it is neither an RSA nor an ECC object.
 */
export function readPublicArea(tpm2bPublic: Uint8Array, what = "the key's public area"): TpmPublic {
  return parsePublic(tpm2bPublic, what, true, DEVICE_CODES);
}
