/**
 * What Credentials and OnDemandCredentials have in common (google.auth.credentials.
 * Signing + CredentialsWithQuotaProject): a signer, who the tokens are from, extra
 * claims, a lifetime and a quota project; the factories from service-account JSON;
 * copies with some of that changed; and how a token is put on a request.
 */
import {
  readServiceAccountFile,
  signerFromServiceAccountInfo,
  type DescriptorOrigin,
  type ServiceAccountInfo,
} from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';

export const DEFAULT_LIFETIME_SECONDS = 3600;

/** Request headers as either a plain object or WHATWG Headers. */
export type HeaderBag = Record<string, string> | { set(name: string, value: string): void };

function setHeader(headers: HeaderBag, name: string, value: string): void {
  if (typeof (headers as { set?: unknown }).set === 'function') {
    (headers as { set(name: string, value: string): void }).set(name, value);
  } else {
    (headers as Record<string, string>)[name] = value;
  }
}

/** Sets `authorization: Bearer <token>` and, with a quota project, x-goog-user-project. */
export function applyBearer(headers: HeaderBag, token: string, quotaProjectId: string | undefined): void {
  setHeader(headers, 'authorization', `Bearer ${token}`);
  if (quotaProjectId !== undefined) setHeader(headers, 'x-goog-user-project', quotaProjectId);
}

export interface SigningCredentialsOptions {
  issuer: string;
  subject: string;
  additionalClaims?: Record<string, unknown>;
  tokenLifetime?: number;
  quotaProjectId?: string;
}

type Constructor<T, O> = new (signer: Signer, options: O) => T;

async function fromInfo<T, O>(
  make: Constructor<T, O>,
  info: ServiceAccountInfo,
  options: Partial<O>,
  origin: DescriptorOrigin = {},
): Promise<T> {
  const signer = await signerFromServiceAccountInfo(info, origin);
  const email = info.client_email!;
  try {
    return new make(signer, { issuer: email, subject: email, ...options } as O);
  } catch (err) {
    await signer.close?.();
    throw err;
  }
}

export abstract class SigningCredentials<O extends SigningCredentialsOptions> {
  readonly signer: Signer;
  readonly issuer: string;
  readonly subject: string;
  readonly additionalClaims: Readonly<Record<string, unknown>>;
  readonly tokenLifetime: number;
  readonly quotaProjectId: string | undefined;

  constructor(signer: Signer, options: O) {
    if (!signer || typeof signer.sign !== 'function') throw invalidArgument('signer must be a Signer');
    if (typeof options?.issuer !== 'string' || typeof options.subject !== 'string') {
      throw invalidArgument('issuer and subject are required strings');
    }
    const lifetime = options.tokenLifetime ?? DEFAULT_LIFETIME_SECONDS;
    if (!Number.isInteger(lifetime) || lifetime <= 0) throw invalidArgument('tokenLifetime must be a positive integer');
    this.signer = signer;
    this.issuer = options.issuer;
    this.subject = options.subject;
    this.additionalClaims = Object.freeze({ ...(options.additionalClaims ?? {}) });
    this.tokenLifetime = lifetime;
    this.quotaProjectId = options.quotaProjectId;
  }

  /**
   * From a service-account JSON (standard, signing in software, or a TPM descriptor);
   * issuer and subject default to its client_email. Throws ERR_KEY_FILE_INVALID.
   */
  static async fromServiceAccountInfo<T, O extends SigningCredentialsOptions>(
    this: Constructor<T, O>,
    info: ServiceAccountInfo,
    options: Partial<O> = {},
  ): Promise<T> {
    return fromInfo(this, info, options);
  }

  /** fromServiceAccountInfo on the JSON file at `path`. */
  static async fromServiceAccountFile<T, O extends SigningCredentialsOptions>(
    this: Constructor<T, O>,
    path: string,
    options: Partial<O> = {},
  ): Promise<T> {
    return fromInfo(this, await readServiceAccountFile(path), options, { file: path });
  }

  /** Credentials signing with another credential's signer, as its email. */
  static fromSigningCredentials<T, O extends SigningCredentialsOptions>(
    this: Constructor<T, O>,
    credentials: { signer: Signer; signerEmail: string },
    options: Partial<O> = {},
  ): T {
    const email = credentials.signerEmail;
    return new this(credentials.signer, { issuer: email, subject: email, ...options } as O);
  }

  get signerEmail(): string {
    return this.issuer;
  }

  signBytes(message: Uint8Array): Promise<Uint8Array> {
    return this.signer.sign(message);
  }

  /** A copy with these claims changed (additionalClaims merged); keeps tokenLifetime. */
  withClaims(changes: Partial<Omit<O, 'tokenLifetime' | 'quotaProjectId'>>): this {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    return this.#rebuild({
      ...defined,
      additionalClaims: { ...this.additionalClaims, ...(changes.additionalClaims ?? {}) },
    } as Partial<O>);
  }

  /** A copy that bills requests to `quotaProjectId` (x-goog-user-project). */
  withQuotaProject(quotaProjectId: string): this {
    return this.#rebuild({ quotaProjectId } as Partial<O>);
  }

  /** The options that would rebuild this credential as it is. */
  protected options(): SigningCredentialsOptions {
    return {
      issuer: this.issuer,
      subject: this.subject,
      additionalClaims: { ...this.additionalClaims },
      tokenLifetime: this.tokenLifetime,
      ...(this.quotaProjectId !== undefined && { quotaProjectId: this.quotaProjectId }),
    };
  }

  #rebuild(changes: Partial<O>): this {
    const make = this.constructor as Constructor<this, O>;
    return new make(this.signer, { ...this.options(), ...changes } as O);
  }
}
