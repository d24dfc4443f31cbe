/** The codes jose raises under the same name for the same failure; they pass through as they are. */
export const JOSE_ERROR_CODES = [
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
] as const;

/**
 * Every stable error code (docs/errors.md). native/tss/error_code.h lists the same set, which
 * the addon exports as `errorCodes`; test/05.errors.test.ts holds the two equal.
 */
export const ERROR_CODES = [
  'ERR_TPM_CONNECTION',
  'ERR_TPM_TIMEOUT',
  'ERR_TPM_KEY_NOT_FOUND',
  'ERR_TPM_AUTH_FAIL',
  'ERR_TPM_LOCKOUT',
  'ERR_TPM_BUSY',
  'ERR_TPM_POLICY_FAIL',
  'ERR_TPM_HANDLE_IN_USE',
  'ERR_TPM_OBJECT_MEMORY',
  'ERR_TPM_UNSUPPORTED',
  'ERR_TPM_CLOSED',
  'ERR_TPM',
  'ERR_NATIVE_ADDON',
  'ERR_KEY_FILE_INVALID',
  'ERR_INVALID_ARGUMENT',
  ...JOSE_ERROR_CODES,
  'ERR_TOKEN_EXCHANGE',
  'ERR_TLS',
  'ERR_ENROLLMENT_REFUSED',
] as const;

/** Stable error codes (docs/errors.md); jose's names where jose has the same failure. */
export type TpmJwtErrorCode = (typeof ERROR_CODES)[number];

export interface TpmJwtErrorOptions {
  cause?: unknown;
  /** The TSS2_RC behind a TPM failure. */
  tpmRc?: number;
  /** Tss2_RC_Decode's text for tpmRc. */
  tpmRcText?: string;
  /** The ESYS/TCTI function that failed. */
  command?: string;
}

// Marks every TpmJwtError, whichever copy of this module made it: one application can
// hold two (the package loaded through require() and through import, or two installs).
const BRAND = Symbol.for('tpm-jwt.TpmJwtError');

/** The one error class of tpm-jwt: branch on `code`, never on the message. */
export class TpmJwtError extends Error {
  /** `instanceof TpmJwtError` holds for one made by any copy of tpm-jwt. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: boolean })[BRAND] === true;
  }

  readonly code: TpmJwtErrorCode;
  readonly tpmRc?: number;
  readonly tpmRcText?: string;
  readonly command?: string;

  constructor(code: TpmJwtErrorCode, message: string, options: TpmJwtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, BRAND, { value: true });
    this.name = new.target.name;
    this.code = code;
    if (options.tpmRc !== undefined) this.tpmRc = options.tpmRc;
    if (options.tpmRcText !== undefined) this.tpmRcText = options.tpmRcText;
    if (options.command !== undefined) this.command = options.command;
  }
}

/** Shorthand for the argument checks every public entry point makes. */
export function invalidArgument(message: string): TpmJwtError {
  return new TpmJwtError('ERR_INVALID_ARGUMENT', message);
}

/**
 * The first TpmJwtError in `err`'s cause chain (a library that wraps a TPM or TLS failure
 * keeps it as a cause), or undefined. node-fetch keeps only a socket error's code and
 * message: an error of that shape with one of our codes is made ours again, `err` its cause.
 */
export function ownError(err: unknown): TpmJwtError | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof TpmJwtError) return e;
    const { code, type } = e as { code?: unknown; type?: unknown };
    if (type === 'system' && (ERROR_CODES as readonly unknown[]).includes(code)) {
      return new TpmJwtError(code as TpmJwtErrorCode, (e as Error).message, { cause: err });
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * An error's message with its causes' after it, each once. fetch says only "fetch
 * failed"; why (connect ECONNREFUSED, getaddrinfo ENOTFOUND, a certificate error) is in
 * its cause, and a user reading our message needs it.
 */
export function messageWithCauses(err: unknown): string {
  const parts: string[] = [];
  // A cause chain is short; the bound only keeps a cycle from looping.
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const message = e instanceof Error ? e.message : String(e);
    if (message !== '' && !parts.some((part) => part.includes(message))) parts.push(message);
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(': ');
}
