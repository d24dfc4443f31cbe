/**
 * Keyless federation through google-auth-library, without a subprocess: an
 * IdentityPoolClient whose subject tokens come from the TPM key (a JWT it signs, or the
 * chain of its X.509 certificate presented over mutual TLS), the credential
 * configuration it is read from, and the tokens a federated client obtains (access
 * tokens, and ID tokens from IAM's generateIdToken) for callers that cache them.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { IdentityPoolClient, type BaseExternalAccountClient, type SubjectTokenSupplier } from 'google-auth-library';

import { openServiceAccountFile, tpmSignerOptions } from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { invalidArgument, messageWithCauses, ownError, TpmJwtError } from '../errors.js';
import { TokenCache, type ExpiringToken } from '../jwt/token-cache.js';
import { checkEncryptFromFile } from '../tpm/tcti-trust.js';
import { iamAccount } from './iam-credentials.js';
import { jwtExpiry } from './token-sources.js';
import {
  checkEndpointFromFile,
  checkUniverseDomainFromFile,
  parseWifTokenCommand,
  type WifTokenArgs,
} from './wif-config.js';
import { mintSubjectToken, providerAudience, TOKEN_TYPE_JWT } from './wif-subject-token.js';
import {
  certificateConfigPath,
  readCertificateConfig,
  readCertificateSource,
  TOKEN_TYPE_MTLS,
  X509Credential,
  type CertificateSource,
} from './wif-x509.js';

/** How many provider audiences a supplier keeps a subject token for (a client asks for one). */
const SUBJECT_AUDIENCES_KEPT = 10;

export interface TpmSubjectTokenOptions {
  signer: Signer;
  /** The issuer URI the provider was created with. */
  issuer: string;
  /** Default: the RFC 7638 thumbprint of the signer's public key. */
  subject?: string;
  lifetime?: number;
  /** The subject tokens' aud; default https: + the provider audience the client asks for. */
  audience?: string;
}

/**
 * A subject_token_supplier for IdentityPoolClient: subject tokens signed by `signer`,
 * for the provider audience the client asks for. The client does not cache them, so
 * this does: one signing per token lifetime and audience, shared by concurrent calls.
 */
export function tpmSubjectTokenSupplier(options: TpmSubjectTokenOptions): SubjectTokenSupplier {
  const tokens = new TokenCache(
    (audience: string) =>
      mintSubjectToken(options.signer, {
        issuer: options.issuer,
        ...(options.subject !== undefined && { subject: options.subject }),
        audience: options.audience ?? providerAudience(audience),
        ...(options.lifetime !== undefined && { lifetime: options.lifetime }),
      }),
    { maxSize: SUBJECT_AUDIENCES_KEPT, refreshAhead: true },
  );
  return { getSubjectToken: async ({ audience }) => (await tokens.get(audience)).token };
}

/** What a credential configuration for the TPM key says, checked: one of `command` and `certificate`. */
interface WifConfiguration {
  /** IdentityPoolClient options, all but the subject-token supplier. */
  readonly options: {
    type: 'external_account';
    audience: string;
    subject_token_type: string;
    token_url?: string;
    service_account_impersonation_url?: string;
    service_account_impersonation?: { token_lifetime_seconds?: number };
    universe_domain?: string;
  };
  /** An executable source: the wif-token command's arguments (the key, its TCTI, the issuer and subject). */
  readonly command?: WifTokenArgs;
  /** An X.509 source: where the certificate configuration and chain are, relative paths resolved. */
  readonly certificate?: CertificateSource;
  /** Where it was read from: relative key and descriptor paths are resolved against it. */
  readonly file: string;
  /** The service account it impersonates, if any. */
  readonly serviceAccount: string | undefined;
}

type IdentityPoolClientOptions = ConstructorParameters<typeof IdentityPoolClient>[0];

/**
 * Reads a credential configuration for the TPM key, either kind wif-config writes: an
 * executable source that runs `tpm-jwt wif-token`, or an X.509 certificate source.
 * Its TCTI is held to the kinds a file may name (tcti-trust.ts) when the key is opened;
 * its token_url and service_account_impersonation_url to Google's endpoints for its
 * universe domain (checkEndpointFromFile), here, before any request. Throws
 * ERR_KEY_FILE_INVALID for a file that is not JSON, ERR_INVALID_ARGUMENT for another
 * kind of configuration or an endpoint a file may not name.
 */
export async function readWifConfiguration(file: string): Promise<WifConfiguration> {
  let config: {
    type?: string;
    audience?: string;
    subject_token_type?: string;
    token_url?: string;
    service_account_impersonation_url?: string;
    service_account_impersonation?: { token_lifetime_seconds?: number };
    universe_domain?: string;
    credential_source?: { executable?: { command?: string }; certificate?: unknown };
  } | null;
  try {
    config = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read ${file} as JSON`, { cause: err });
  }
  if (config === null || typeof config !== 'object') {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${file} does not hold a JSON object`);
  }
  const command = config.credential_source?.executable?.command;
  const certificate = config.credential_source?.certificate;
  if (
    config.type !== 'external_account' ||
    typeof config.audience !== 'string' ||
    (typeof command === 'string') === (typeof certificate === 'object' && certificate !== null)
  ) {
    throw invalidArgument(
      `${file} is not an external_account configuration with an executable (tpm-jwt wif-token) or certificate source`,
    );
  }
  // The subject token goes to token_url, the federated token to the impersonation URL.
  const universeDomain = checkUniverseDomainFromFile(config.universe_domain, file);
  const x509 = typeof certificate === 'object' && certificate !== null;
  const tokenUrl =
    config.token_url === undefined
      ? undefined
      : checkEndpointFromFile(config.token_url, 'token_url', x509 ? 'sts-mtls' : 'sts', universeDomain, file);
  const impersonation =
    config.service_account_impersonation_url === undefined
      ? undefined
      : checkEndpointFromFile(
          config.service_account_impersonation_url,
          'service_account_impersonation_url',
          'impersonation',
          universeDomain,
          file,
        );
  const source =
    typeof command === 'string'
      ? { command: parseWifTokenCommand(command) }
      : { certificate: resolvedCertificateSource(readCertificateSource(certificate, file), file) };
  // An X.509 subject token is a certificate chain, exchanged only over mutual TLS.
  const exchangeUrl = tokenUrl ?? (source.certificate ? mtlsTokenUrl(universeDomain) : undefined);
  const tokenType = config.subject_token_type ?? (source.command ? TOKEN_TYPE_JWT : TOKEN_TYPE_MTLS);
  if (source.certificate && tokenType !== TOKEN_TYPE_MTLS) {
    throw invalidArgument(`${file}: a certificate source's subject_token_type is ${TOKEN_TYPE_MTLS}`);
  }
  return {
    options: {
      type: 'external_account',
      audience: config.audience,
      subject_token_type: tokenType,
      ...(exchangeUrl !== undefined && { token_url: exchangeUrl }),
      ...(impersonation !== undefined && { service_account_impersonation_url: impersonation }),
      ...(config.service_account_impersonation !== undefined && {
        service_account_impersonation: config.service_account_impersonation,
      }),
      ...(config.universe_domain !== undefined && { universe_domain: config.universe_domain }),
    },
    ...source,
    file,
    serviceAccount: impersonatedAccount(impersonation),
  };
}

/** Google's mTLS STS in a universe. */
function mtlsTokenUrl(universeDomain: string): string {
  return `https://sts.mtls.${universeDomain}/v1/token`;
}

/** A certificate source with its paths resolved against the configuration that names them. */
function resolvedCertificateSource(source: CertificateSource, file: string): CertificateSource {
  const base = path.dirname(path.resolve(file));
  return {
    ...(source.certificateConfigLocation !== undefined && {
      certificateConfigLocation: path.resolve(base, source.certificateConfigLocation),
    }),
    ...(source.trustChainPath !== undefined && { trustChainPath: path.resolve(base, source.trustChainPath) }),
  };
}

/** The email in an impersonation URL (…/serviceAccounts/EMAIL:generateAccessToken). */
function impersonatedAccount(url: string | undefined): string | undefined {
  return url === undefined ? undefined : iamAccount(url, 'generateAccessToken');
}

/**
 * Opens the signer an executable configuration's command names, held to the rules of
 * any file that names a TPM key (service-account.ts): a checked TCTI, a key file that
 * is a regular file, auth from a named variable; and --no-encrypt only for a device
 * TCTI (tcti-trust.ts). Throws ERR_INVALID_ARGUMENT before connecting for what a file
 * may not ask. The caller closes it.
 */
async function openCommandSigner(command: WifTokenArgs, file: string): Promise<Signer> {
  const { key, credentials, tcti, kid, authEnv, pcrs, encrypt } = command;
  if (credentials !== undefined) {
    return (await openServiceAccountFile(path.resolve(path.dirname(file), credentials))).signer;
  }
  const tpm = {
    key: key!,
    ...(tcti !== undefined && { tcti }),
    ...(authEnv !== undefined && { auth_env: authEnv }),
    ...(pcrs !== undefined && { pcrs }),
  };
  const options = await tpmSignerOptions({ tpm, ...(kid !== undefined && { private_key_id: kid }) }, { file });
  checkEncryptFromFile(encrypt, options.tcti, file);
  return TpmSigner.open({ ...options, ...(encrypt !== undefined && { encrypt }) });
}

/** The supplier for an executable configuration's subject tokens, signed by `signer`. */
function commandSubjectTokenSupplier(command: WifTokenArgs, signer: Signer): SubjectTokenSupplier {
  const { issuer, subject, lifetime, audience } = command;
  return tpmSubjectTokenSupplier({
    signer,
    issuer,
    ...(subject !== undefined && { subject }),
    ...(lifetime !== undefined && { lifetime }),
    ...(audience !== undefined && { audience }),
  });
}

/** A configuration's TPM key, opened: its subject tokens, and for X.509 the certificate's TLS. */
export interface WifIdentity {
  readonly signer: Signer;
  /** One per identity: a JWKS subject token is signed once per lifetime and audience. */
  readonly supplier: SubjectTokenSupplier;
  /** An X.509 source's certificate and agent. */
  readonly x509?: X509Credential;
  close(): Promise<void>;
}

/** Options for the TLS of an X.509 source. */
export interface WifIdentityOptions {
  /** PEM roots to check Google's servers against instead of the system's (a TLS-inspecting proxy, a stand-in). */
  ca?: string;
}

/**
 * Opens the TPM key `configuration` names: the wif-token command's key, or the key of
 * the certificate configuration an X.509 source names (cert_configs.workload). Throws
 * as the files' readers do, or the TPM's error. The caller closes it.
 */
export async function openWifIdentity(
  configuration: WifConfiguration,
  options: WifIdentityOptions = {},
): Promise<WifIdentity> {
  if (configuration.command) {
    const signer = await openCommandSigner(configuration.command, configuration.file);
    return {
      signer,
      supplier: commandSubjectTokenSupplier(configuration.command, signer),
      close: async () => await signer.close?.(),
    };
  }
  const source = configuration.certificate!;
  const workload = await readCertificateConfig(certificateConfigPath(source));
  const x509 = await X509Credential.open(workload, source.trustChainPath, options);
  return {
    signer: x509.signer,
    supplier: { getSubjectToken: async () => (await x509.current()).subjectToken },
    x509,
    close: () => x509.close(),
  };
}

/** The transporter google-auth-library's STS client posts with (a protected field). */
function stsTransporter(client: unknown): { defaults: { agent?: unknown } } {
  const transporter = (client as { stsCredential?: { transporter?: { defaults?: { agent?: unknown } } } }).stsCredential
    ?.transporter;
  if (transporter?.defaults === undefined) {
    throw new TpmJwtError('ERR_TOKEN_EXCHANGE', 'this google-auth-library has no STS transporter to give an agent to');
  }
  return transporter as { defaults: { agent?: unknown } };
}

/**
 * An IdentityPoolClient whose subject tokens come from an opened identity. For an X.509
 * identity it does what google-auth-library does for its own certificate source, with
 * the TPM key: the exchange and every later request go over mutual TLS presenting the
 * certificate the subject token names.
 */
class WifIdentityPoolClient extends IdentityPoolClient {
  readonly #x509: X509Credential | undefined;

  constructor(options: IdentityPoolClientOptions, identity: WifIdentity) {
    super({ ...options, subject_token_supplier: identity.supplier });
    this.#x509 = identity.x509;
  }

  override async retrieveSubjectToken(): Promise<string> {
    if (!this.#x509) return super.retrieveSubjectToken();
    const { subjectToken, agent } = await this.#x509.current();
    this.transporter.defaults.agent = agent;
    stsTransporter(this).defaults.agent = agent;
    return subjectToken;
  }
}

/**
 * A client for `configuration` with `identity` (opened by openWifIdentity), for `scopes`;
 * without the service-account impersonation when `impersonate` is false (the federated
 * token itself). Clients of one identity share its subject tokens and TLS connections.
 */
export function wifClient(
  configuration: WifConfiguration,
  identity: WifIdentity,
  overrides: { scopes?: string[]; impersonate?: boolean } = {},
): IdentityPoolClient {
  const { service_account_impersonation_url: _impersonation, ...federated } = configuration.options;
  return new WifIdentityPoolClient(
    {
      ...(overrides.impersonate === false ? federated : configuration.options),
      ...(overrides.scopes !== undefined && { scopes: overrides.scopes }),
    },
    identity,
  );
}

/** An IdentityPoolClient that signs its subject tokens in the TPM; close() releases the TPM. */
export class TpmIdentityPoolClient extends WifIdentityPoolClient {
  readonly #identity: WifIdentity;

  private constructor(options: IdentityPoolClientOptions, identity: WifIdentity) {
    super(options, identity);
    this.#identity = identity;
  }

  /**
   * The client for a credential configuration for the TPM key (what wif-config writes):
   * the same audience, token URL and impersonation. With an executable source, the key
   * and issuer from its `tpm-jwt wif-token` command, the subject tokens signed here
   * instead of by a subprocess; with an X.509 source, the certificate configuration's
   * certificate and TPM key, over mutual TLS. Throws as readWifConfiguration does.
   */
  static async fromCredentialConfiguration(
    file: string,
    options: WifIdentityOptions = {},
  ): Promise<TpmIdentityPoolClient> {
    const configuration = await readWifConfiguration(file);
    const identity = await openWifIdentity(configuration, options);
    try {
      return new TpmIdentityPoolClient(configuration.options, identity);
    } catch (err) {
      await identity.close();
      throw err;
    }
  }

  /** Releases the TPM connection the client opened (and an X.509 source's connections). */
  async close(): Promise<void> {
    await this.#identity.close();
  }
}

/** ERR_TOKEN_EXCHANGE for what the client threw, unless it is ours (a TPM or TLS failure keeps its code). */
function exchangeError(what: string, err: unknown): TpmJwtError {
  const own = ownError(err);
  if (own) return own;
  // google-auth-library's message carries the server's own error text (invalid_grant: ...).
  const status = (err as { response?: { status?: number } }).response?.status;
  const message = messageWithCauses(err);
  const detail = status === undefined ? message : `HTTP ${status}: ${message}`;
  return new TpmJwtError('ERR_TOKEN_EXCHANGE', `${what}: ${detail.slice(0, 500)}`, { cause: err });
}

/** The access token `client` obtains (STS, then impersonation when it is configured); ERR_TOKEN_EXCHANGE. */
export async function federatedAccessToken(client: BaseExternalAccountClient): Promise<ExpiringToken> {
  let token: string | null | undefined;
  try {
    ({ token } = await client.getAccessToken());
  } catch (err) {
    throw exchangeError('federated token exchange', err);
  }
  const expiry = client.credentials.expiry_date;
  if (!token || typeof expiry !== 'number') {
    throw new TpmJwtError('ERR_TOKEN_EXCHANGE', 'federated token exchange: no token with an expiry');
  }
  return { token, expiry: new Date(expiry) };
}

/**
 * An ID token for `audience` from generateIdToken at `url` (…/serviceAccounts/EMAIL:generateIdToken),
 * called by `client`, whose principal needs roles/iam.workloadIdentityUser on the account.
 * Throws ERR_TOKEN_EXCHANGE.
 */
export async function generatedIdToken(
  client: BaseExternalAccountClient,
  url: string,
  audience: string,
): Promise<ExpiringToken> {
  let token: unknown;
  try {
    ({ token } = (
      await client.request<{ token?: unknown }>({
        url,
        method: 'POST',
        data: { audience, includeEmail: true },
        responseType: 'json',
      })
    ).data);
  } catch (err) {
    throw exchangeError(`generateIdToken ${url}`, err);
  }
  const expiry = await jwtExpiry(token);
  if (!expiry) throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `generateIdToken ${url}: the answer has no ID token`);
  return { token: token as string, expiry };
}
