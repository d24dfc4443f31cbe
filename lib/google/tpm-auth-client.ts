/**
 * google-auth-library's AuthClient over a Signer whose key is in a TPM. The client holds
 * one TokenSource for its mode (token-sources.ts) and adds what every mode shares: the
 * signer's lifetime, headers any google-auth-library major reads, IAM signBlob answered
 * in the TPM (storage.ts), and the AuthClient methods the client libraries call.
 */
import type { Agent } from 'node:https';

import { AuthClient } from 'google-auth-library';

import type { Signer } from '../crypt/signer.js';
import { TpmSigner, type TpmSignerOptions } from '../crypt/tpm-signer.js';
import { openServiceAccountFile } from '../crypt/service-account.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { checkAudienceOrScope } from '../jwt/encode.js';
import type { ExpiringToken } from '../jwt/token-cache.js';
import { mtlsAgent, type MtlsOptions } from './mtls.js';
import { mtlsEndpoint } from './mtls-endpoint.js';
import { signBlob, signBlobPayload } from './storage.js';
import { defaultTokenUrl, makeTokenSource, type TokenSource, type TpmAuthMode } from './token-sources.js';

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
  /**
   * Certificate-based access: request() goes to each service's mTLS endpoint
   * (SERVICE.mtls.googleapis.com), and oauth2/id-token exchanges to the token endpoint's,
   * over mutual TLS presenting this certificate for the TPM key (mtls.ts).
   */
  mtls?: MtlsOptions;
}

// gaxios's own types, taken through AuthClient so they are the very ones
// google-auth-library uses (importing gaxios here could give its ESM twin).
type RequestOptions = Parameters<AuthClient['request']>[0];

function closedError(): TpmJwtError {
  return new TpmJwtError('ERR_TPM_CLOSED', 'the TpmAuthClient is closed');
}

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
 *
 * It also signs blobs in the TPM (sign(), and IAM signBlob calls for its own account made
 * through request(): how GoogleAuth.sign, and so Storage's signed URLs, reach it).
 *
 * After close(), every call (getRequestHeaders, getAccessToken, getToken, request, sign)
 * rejects with ERR_TPM_CLOSED, even one a cached token could answer: a closed client
 * never serves a token, whoever owns the signer.
 */
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
  readonly #source: TokenSource;
  #signer: Promise<Signer> | undefined;
  /** Whether close() should close the signer: the client opened it (keyRef, a file). */
  #ownsSigner: boolean;
  #closing: Promise<void> | undefined;
  #mtlsAgent: Promise<Agent> | undefined;

  /** Opens nothing yet; throws ERR_INVALID_ARGUMENT for missing or conflicting options. */
  constructor(options: TpmAuthClientOptions) {
    super({
      ...(options?.quotaProjectId !== undefined && { quotaProjectId: options.quotaProjectId }),
      ...(options?.universeDomain !== undefined && { universeDomain: options.universeDomain }),
      ...(options?.projectId !== undefined && { projectId: options.projectId }),
    });
    if (typeof options?.email !== 'string' || options.email === '') throw invalidArgument('email is required');
    if (!options.signer === !options.keyRef) throw invalidArgument('give exactly one of signer or keyRef');
    const mode = options.mode ?? 'jwt-access';
    checkAudienceOrScope(options.audience, options.scopes);
    this.#options = options;
    this.email = options.email;
    this.mode = mode;
    this.scopes = options.scopes === undefined ? undefined : [options.scopes].flat();
    this.audience = options.audience;
    this.tokenUrl = options.tokenUrl ?? defaultTokenUrl(this.universeDomain);
    this.targetAudience = options.targetAudience;
    if (options.signer) this.#signer = Promise.resolve(options.signer);
    this.#ownsSigner = options.keyRef !== undefined;
    this.#source = makeTokenSource({
      mode,
      email: this.email,
      ...(this.scopes !== undefined && { scopes: this.scopes }),
      ...(this.audience !== undefined && { audience: this.audience }),
      ...(this.targetAudience !== undefined && { targetAudience: this.targetAudience }),
      tokenUrl: this.tokenUrl,
      ...(options.tokenTimeoutMs !== undefined && { tokenTimeoutMs: options.tokenTimeoutMs }),
      ...(options.tokenLifetime !== undefined && { tokenLifetime: options.tokenLifetime }),
      universeDomain: this.universeDomain,
      signer: () => this.#getSigner(),
      servicePath: () => this.defaultServicePath,
      ...(options.mtls !== undefined && { mtlsAgent: () => this.#getMtlsAgent() }),
    });
  }

  /**
   * A client for a service-account file (a tpm_service_account descriptor or a standard
   * key) that closes the signer it opens.
   */
  static async fromServiceAccountFile(
    path: string,
    options: Omit<TpmAuthClientOptions, 'signer' | 'keyRef' | 'email'> = {},
  ): Promise<TpmAuthClient> {
    const { info, signer } = await openServiceAccountFile(path);
    try {
      const client = new TpmAuthClient({
        ...options,
        signer,
        email: info.client_email!,
        ...(info.project_id !== undefined && options.projectId === undefined && { projectId: info.project_id }),
        ...(info.universe_domain !== undefined &&
          options.universeDomain === undefined && { universeDomain: info.universe_domain }),
      });
      client.#ownsSigner = true;
      return client;
    } catch (err) {
      await signer.close?.();
      throw err;
    }
  }

  /**
   * Headers that authorise a request to `url` (any google-auth-library major reads them);
   * ERR_TPM_CLOSED after close().
   */
  async getRequestHeaders(url?: string | URL): Promise<Headers> {
    if (this.#closing) throw closedError();
    const token = this.#source.cached(url) ?? (await this.#source.token(url)).token;
    const headers = new CompatHeaders();
    headers['authorization'] = `Bearer ${token}`;
    if (this.quotaProjectId) headers['x-goog-user-project'] = this.quotaProjectId;
    return headers as unknown as Headers;
  }

  /** The token: the scope-mode JWT, the OAuth access token or the ID token, per mode; ERR_TPM_CLOSED after close(). */
  async getAccessToken(): Promise<{ token: string; res: null }> {
    return { token: (await this.getToken()).token, res: null };
  }

  /** The token with its expiry, as a credential helper prints it; ERR_TPM_CLOSED after close(). */
  async getToken(url?: string | URL): Promise<ExpiringToken> {
    if (this.#closing) throw closedError();
    return this.#source.token(url);
  }

  /**
   * The base64 RSASSA-PKCS1-v1_5 SHA-256 signature of `blob` (a string as UTF-8), made in
   * the TPM: what IAM signBlob returns. ERR_JOSE_ALG_NOT_ALLOWED unless the key signs
   * RS256; ERR_TPM_CLOSED after close().
   */
  async sign(blob: string | Uint8Array): Promise<string> {
    return signBlob(await this.#getSigner(), blob);
  }

  /**
   * An authorised request through the client's transporter, except IAM signBlob for this
   * client's own account, which is answered here by sign() and never sent (storage.ts).
   * ERR_TPM_CLOSED after close().
   */
  async request<T>(options: RequestOptions): ReturnType<typeof this.transporter.request<T>> {
    const payload = signBlobPayload(options, this.email);
    if (payload) return this.#answerSignBlob(options, payload) as ReturnType<typeof this.transporter.request<T>>;
    const headers = new Headers(options.headers as ConstructorParameters<typeof Headers>[0]);
    (await this.getRequestHeaders(options.url)).forEach((value, name) => headers.set(name, value));
    // The token's audience is the service's own URL; the request goes to its mTLS endpoint.
    const mtls =
      this.#options.mtls && URL.canParse(String(options.url))
        ? { url: mtlsEndpoint(String(options.url), this.universeDomain), agent: await this.#getMtlsAgent() }
        : {};
    const response = await this.transporter.request<T>({ ...options, headers, ...mtls });
    // Storage 7's resumable uploads read response headers as plain properties.
    exposeHeaders(response.headers as unknown as Headers);
    return response;
  }

  /** IAM's signBlob response, as much of a gaxios response as GoogleAuth.signBlob reads and more. */
  async #answerSignBlob(options: RequestOptions, payload: Uint8Array): Promise<unknown> {
    const signer = await this.#getSigner();
    const signedBlob = await signBlob(signer, payload);
    return {
      config: options,
      data: { keyId: signer.keyId ?? '', signedBlob },
      status: 200,
      statusText: 'OK',
      headers: new CompatHeaders({ 'content-type': 'application/json' }),
      request: { responseURL: String(options.url) },
    };
  }

  /**
   * Closes the client for good, and the TPM connection when the client opened it (keyRef,
   * fromServiceAccountFile); a caller's signer stays open. Calling it again is harmless.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeSigner();
    return this.#closing;
  }

  async #closeSigner(): Promise<void> {
    (await this.#mtlsAgent?.catch(() => undefined))?.destroy();
    if (!this.#ownsSigner || !this.#signer) return;
    // An open that failed left nothing to close.
    const signer = await this.#signer.catch(() => undefined);
    await signer?.close?.();
  }

  /** The one agent of this client's mTLS connections, made on first use. */
  #getMtlsAgent(): Promise<Agent> {
    if (!this.#mtlsAgent) {
      const made = this.#getSigner().then((signer) => mtlsAgent(signer, this.#options.mtls!));
      // A failure (the signer could not open) is tried again next time.
      made.catch(() => {
        if (this.#mtlsAgent === made) this.#mtlsAgent = undefined;
      });
      this.#mtlsAgent = made;
    }
    return this.#mtlsAgent;
  }

  #getSigner(): Promise<Signer> {
    // A token fetch that began before close() must not open a connection nobody closes.
    if (this.#closing) return Promise.reject(closedError());
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
}

/** What tpmStorageOptions returns: spread it into `new Storage({...})` options. */
export interface TpmStorageOptions {
  /**
   * The TpmAuthClient, typed to fit any Storage: Storage 7 and 8 declare `authClient` with
   * their own nested google-auth-library, and a client built on another copy (the one
   * tpm-jwt sees) does not type-check there though it works.
   */
  authClient: any;
  /** Only the email (and universe) GoogleAuth.getCredentials() reports: no private key. */
  credentials: { client_email: string; universe_domain: string };
  projectId?: string;
}

/**
 * Options for `new Storage({ ...tpmStorageOptions(client), ...yours })` (Storage 7 and 8,
 * google-auth-library 9, 10, 11) with which getSignedUrl and generateSignedPostPolicyV4
 * sign in the TPM and never call IAM. Signing fails as Storage's SigningError unless the
 * key signs RS256. Storage signs through the GoogleAuth it wraps around `authClient`:
 * GoogleAuth.sign takes the account's email from getCredentials(), which reads only the
 * `credentials` JSON (or the GCE metadata server), never the client, then POSTs IAM
 * signBlob for that email through the client's request(), which answers it in the TPM.
 * `credentials` holds no key: `authClient` still authorises every call, because
 * GoogleAuth uses a given client before any JSON.
 */
export function tpmStorageOptions(client: TpmAuthClient): TpmStorageOptions {
  return {
    authClient: client,
    credentials: { client_email: client.email, universe_domain: client.universeDomain },
    ...(client.projectId ? { projectId: client.projectId } : {}),
  };
}

/**
 * Request headers every google-auth-library major reads correctly. 10 and 11 (and
 * gax, building gRPC metadata) call get/forEach or iterate them like WHATWG Headers;
 * 9 merges them with Object.assign and reads Object.keys. CompatHeaders is both: each
 * header is an own enumerable property (lower-case name), and the Headers methods live
 * on the prototype. It is also far cheaper to make than a real Headers, which matters
 * on the cached-token path every request takes.
 */
class CompatHeaders implements Iterable<[string, string]> {
  [name: string]: unknown;

  constructor(entries: Record<string, string> = {}) {
    for (const name in entries) this[name.toLowerCase()] = String(entries[name]);
  }

  get(name: string): string | null {
    const key = name.toLowerCase();
    return Object.hasOwn(this, key) ? (this[key] as string) : null;
  }
  has(name: string): boolean {
    return Object.hasOwn(this, name.toLowerCase());
  }
  set(name: string, value: string): void {
    this[name.toLowerCase()] = String(value);
  }
  append(name: string, value: string): void {
    const current = this.get(name);
    this.set(name, current === null ? value : `${current}, ${value}`);
  }
  delete(name: string): void {
    delete this[name.toLowerCase()];
  }
  getSetCookie(): string[] {
    return [];
  }
  forEach(callback: (value: string, name: string, parent: this) => void, thisArg?: unknown): void {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this);
  }
  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this).sort()) yield [name, this[name] as string];
  }
  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }
  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** Copies each header of a response onto the headers object as a plain property too. */
function exposeHeaders(headers: { forEach?: (fn: (value: string, name: string) => void) => void }): void {
  headers.forEach?.((value, name) => {
    if (!Object.hasOwn(headers, name)) {
      Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: true });
    }
  });
}
