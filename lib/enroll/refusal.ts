/** ERR_ENROLLMENT_REFUSED: why the server will not issue, in words the device shows its operator. */
import { TpmJwtError } from '../errors.js';

export const ENROLLMENT_REFUSED = (why: string): TpmJwtError => new TpmJwtError('ERR_ENROLLMENT_REFUSED', why);
