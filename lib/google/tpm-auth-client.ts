/**
 * A google-auth-library AuthClient whose key is in a TPM, for any Google Cloud client
 * library: `new Storage({ authClient: new TpmAuthClient({ keyRef, email }) })`.
 *
 * Modes:
 * - 'jwt-access' (default): a self-signed JWT is the Bearer token (AIP-4111), its aud
 *   the service's root URL, or a `scope` claim when scopes are set or no audience can
 *   be known. No token server is involved.
 * - 'oauth2': the JWT-bearer grant exchanges a signed assertion for an access token.
 * - 'id-token': the same grant with `target_audience` returns an ID token for Cloud Run,
 *   IAP and other services that verify Google-signed ID tokens.
 */
import { AuthClient } from 'google-auth-library';
import { decodeJwt } from 'jose';

import type { Signer } from '../crypt/signer.js';
import { TpmSigner, type TpmSignerOptions } from '../crypt/tpm-signer.js';
import { readServiceAccountFile, signerFromServiceAccountInfo } from '../crypt/service-account.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { rememberLast } from '../remember-last.js';
import { Credentials } from '../jwt/credentials.js';
import { mintToken } from '../jwt/mint.js';
import { OnDemandCredentials } from '../jwt/on-demand-credentials.js';
import { serviceAudience } from './audience.js';
import { CachedToken, type ExpiringToken } from './cached-token.js';
import { CompatHeaders, exposeHeaders } from './headers.js';
import { exchangeAssertion } from './token-exchange.js';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const ASSERTION_LIFETIME_SECONDS = 3600;

export type TpmAuthMode = 'jwt-access' | 'oauth2' | 'id-token';

export interface TpmAuthClientOptions {
  /** Signs the tokens; or give `keyRef` (and TPM options) to open a TpmSigner on first use. */
  signer?: Signer;
  keyRef?: string;
  tcti?: string;
  auth?: string | Uint8Array;
  keyId?: string;
  encrypt?: boolean;
  pcrs?: TpmSignerOptions['pcrs'];
  /** The service account: issuer and subject of every token. */
  email: string;
  scopes?: string | string[];
  /** jwt-access: a fixed audience instead of one per service. */
  audience?: string;
  mode?: TpmAuthMode;
  /** oauth2 and id-token: the token endpoint (default https://oauth2.<universeDomain>/token). */
  tokenUrl?: string;
  /** id-token: the audience of the ID token. */
  targetAudience?: string;
  quotaProjectId?: string;
  universeDomain?: string;
  projectId?: string;
  /** Lifetime of self-signed tokens, seconds (default 3600). */
  tokenLifetime?: number;
  /** How long to wait for the token endpoint, ms (default 30000). */
  tokenTimeoutMs?: number;
}

const MODES: readonly TpmAuthMode[] = ['jwt-access', 'oauth2', 'id-token'];

// gaxios's own types, taken through AuthClient so they are the very ones
// google-auth-library uses (importing gaxios here could give its ESM twin).
type RequestOptions = Parameters<AuthClient['request']>[0];

export class TpmAuthClient extends AuthClient {
  readonly email: string;
  readonly mode: TpmAuthMode;
  readonly scopes: readonly string[] | undefined;
  readonly audience: string | undefined;
  readonly tokenUrl: string;
  readonly targetAudience: string | undefined;
  /** Set by google-gax on clients it is given: the library's service host. */
  defaultServicePath?: string;
  readonly #options: TpmAuthClientOptions;
  readonly #timeoutMs: number;
  #signer: Promise<Signer> | undefined;
  /** Whether close() should close the signer: the client opened it (keyRef, a file). */
  readonly #ownsSigner: boolean;
  #perAudience: OnDemandCredentials | undefined;
  readonly #urlAudience = rememberLast((url: string | URL) => serviceAudience(url, undefined, this.universeDomain));
  #scoped: Credentials | undefined;
  readonly #exchanged: CachedToken;

  /** @param ownsSigner internal: the client is to close `options.signer` itself. */
  constructor(options: TpmAuthClientOptions, ownsSigner = false) {
    super({
      ...(options?.quotaProjectId !== undefined && { quotaProjectId: options.quotaProjectId }),
      ...(options?.universeDomain !== undefined && { universeDomain: options.universeDomain }),
      ...(options?.projectId !== undefined && { projectId: options.projectId }),
    });
    if (typeof options?.email !== 'string' || options.email === '') throw invalidArgument('email is required');
    if (!options.signer === !options.keyRef) throw invalidArgument('give exactly one of signer or keyRef');
    const mode = options.mode ?? 'jwt-access';
    if (!MODES.includes(mode)) throw invalidArgument(`mode must be one of ${MODES.join(', ')}`);
    if (mode === 'id-token' && typeof options.targetAudience !== 'string') {
      throw invalidArgument('id-token mode needs targetAudience');
    }
    if (options.scopes !== undefined && options.audience !== undefined) {
      throw invalidArgument('a self-signed JWT has an audience or scopes, not both');
    }
    this.#options = options;
    this.email = options.email;
    this.mode = mode;
    this.scopes = options.scopes === undefined ? undefined : [options.scopes].flat();
    this.audience = options.audience;
    this.tokenUrl = options.tokenUrl ?? `https://oauth2.${this.universeDomain}/token`;
    this.targetAudience = options.targetAudience;
    this.#timeoutMs = options.tokenTimeoutMs ?? 30_000;
    if (options.signer) this.#signer = Promise.resolve(options.signer);
    this.#ownsSigner = ownsSigner || options.keyRef !== undefined;
    this.#exchanged = new CachedToken(() => this.#exchange());
  }

  /** A client for a service-account file: a tpm_service_account descriptor or a standard key. */
  static async fromServiceAccountFile(
    path: string,
    options: Omit<TpmAuthClientOptions, 'signer' | 'keyRef' | 'email'> = {},
  ): Promise<TpmAuthClient> {
    const info = await readServiceAccountFile(path);
    const signer = await signerFromServiceAccountInfo(info);
    try {
      return new TpmAuthClient(
        {
          ...options,
          signer,
          email: info.client_email!,
          ...(info.project_id !== undefined && options.projectId === undefined && { projectId: info.project_id }),
        },
        true,
      );
    } catch (err) {
      await signer.close?.();
      throw err;
    }
  }

  /** Headers that authorise a request to `url` (any google-auth-library major reads them). */
  async getRequestHeaders(url?: string | URL): Promise<Headers> {
    const token = this.#cachedBearer(url) ?? (await this.#bearer(url));
    const headers = new CompatHeaders();
    headers['authorization'] = `Bearer ${token}`;
    if (this.quotaProjectId) headers['x-goog-user-project'] = this.quotaProjectId;
    return headers as unknown as Headers;
  }

  /** The token: the scope-mode JWT, the OAuth access token or the ID token, per mode. */
  async getAccessToken(): Promise<{ token: string; res: null }> {
    return { token: await this.#bearer(undefined), res: null };
  }

  /** The token with its expiry, as a credential helper prints it. */
  async getToken(url?: string | URL): Promise<ExpiringToken> {
    if (this.mode !== 'jwt-access') return this.#exchanged.get();
    const token = await this.#bearer(url);
    return { token, expiry: new Date(((decodeJwt(token).exp as number) ?? 0) * 1000) };
  }

  /** An authorised request through the client's transporter. */
  async request<T>(options: RequestOptions): ReturnType<typeof this.transporter.request<T>> {
    const headers = new Headers(options.headers as ConstructorParameters<typeof Headers>[0]);
    (await this.getRequestHeaders(options.url)).forEach((value, name) => headers.set(name, value));
    const response = await this.transporter.request<T>({ ...options, headers });
    // Storage 7's resumable uploads read response headers as plain properties.
    exposeHeaders(response.headers as unknown as Headers);
    return response;
  }

  /** Releases a TPM connection the client opened itself (keyRef, fromServiceAccountFile). */
  async close(): Promise<void> {
    if (this.#ownsSigner && this.#signer) await (await this.#signer).close?.();
  }

  #getSigner(): Promise<Signer> {
    this.#signer ??= (async () => {
      const { keyRef, tcti, auth, keyId, encrypt, pcrs } = this.#options;
      return TpmSigner.open({
        key: keyRef!,
        ...(tcti !== undefined && { tcti }),
        ...(auth !== undefined && { auth }),
        ...(keyId !== undefined && { keyId }),
        ...(encrypt !== undefined && { encrypt }),
        ...(pcrs !== undefined && { pcrs }),
      });
    })().catch((err: unknown) => {
      this.#signer = undefined; // a TPM that was down may be back next time
      throw err;
    });
    return this.#signer;
  }

  #identity() {
    return {
      issuer: this.email,
      subject: this.email,
      ...(this.#options.tokenLifetime !== undefined && { tokenLifetime: this.#options.tokenLifetime }),
    };
  }

  /** The audience for a request URL (undefined: scope mode). */
  #audienceFor(url: string | URL | undefined): string | undefined {
    if (this.scopes !== undefined) return undefined;
    if (this.audience !== undefined) return this.audience;
    // Without a URL the library's service path decides; it is cheap to read.
    if (url === undefined || url === '') return serviceAudience(undefined, this.defaultServicePath, this.universeDomain);
    return this.#urlAudience(url);
  }

  /** The jwt-access token for `url` when it is cached and fresh, synchronously. */
  #cachedBearer(url: string | URL | undefined): string | undefined {
    if (this.mode !== 'jwt-access') return undefined;
    const audience = this.#audienceFor(url);
    if (audience !== undefined) return this.#perAudience?.cachedToken(audience);
    return undefined;
  }

  async #bearer(url: string | URL | undefined): Promise<string> {
    if (this.mode !== 'jwt-access') return (await this.#exchanged.get()).token;
    const audience = this.#audienceFor(url);
    if (audience !== undefined) {
      // Kept as the credentials themselves, not a promise: the cached-token path every
      // request takes should await as little as possible.
      if (!this.#perAudience) {
        const signer = await this.#getSigner();
        this.#perAudience ??= new OnDemandCredentials(signer, this.#identity());
      }
      return this.#perAudience.tokenForAudience(audience);
    }
    // Like #perAudience: made once the signer is there, so a failed open is not kept.
    if (!this.#scoped) {
      const signer = await this.#getSigner();
      this.#scoped ??= new Credentials(signer, {
        ...this.#identity(),
        additionalClaims: { scope: (this.scopes ?? [CLOUD_PLATFORM_SCOPE]).join(' ') },
      });
    }
    if (!this.#scoped.valid) await this.#scoped.refresh();
    return this.#scoped.token!;
  }

  /** One JWT-bearer exchange: an assertion for the token endpoint, then its answer. */
  async #exchange(): Promise<ExpiringToken> {
    const claims =
      this.mode === 'id-token'
        ? { target_audience: this.targetAudience }
        : { scope: (this.scopes ?? [CLOUD_PLATFORM_SCOPE]).join(' ') };
    const { token: assertion } = await mintToken(await this.#getSigner(), {
      issuer: this.email,
      subject: this.email,
      audience: this.tokenUrl,
      additionalClaims: claims,
      tokenLifetime: ASSERTION_LIFETIME_SECONDS,
    });
    const body = await exchangeAssertion(this.tokenUrl, assertion, this.#timeoutMs);
    const field = this.mode === 'id-token' ? 'id_token' : 'access_token';
    const token = body[field];
    if (typeof token !== 'string' || token === '') {
      throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `token endpoint ${this.tokenUrl}: the answer has no ${field}`);
    }
    if (this.mode === 'id-token') {
      let exp: unknown;
      try {
        exp = decodeJwt(token).exp;
      } catch (err) {
        throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `token endpoint ${this.tokenUrl}: the id_token is not a JWT`, { cause: err });
      }
      return { token, expiry: new Date(Number(exp) * 1000) };
    }
    const expiresIn = Number(body['expires_in'] ?? 3600);
    return { token, expiry: new Date(Date.now() + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000) };
  }
}
