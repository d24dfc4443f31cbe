/**
 * Keyless federation through google-auth-library, without a subprocess: an
 * IdentityPoolClient whose subject-token supplier signs in the TPM, the credential
 * configuration it is read from, and the tokens a federated client obtains (access
 * tokens, and ID tokens from IAM's generateIdToken) for callers that cache them.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { IdentityPoolClient, type BaseExternalAccountClient, type SubjectTokenSupplier } from 'google-auth-library';

import { openServiceAccountFile, tpmSignerOptions } from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { invalidArgument, messageWithCauses, TpmJwtError } from '../errors.js';
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
import { mintSubjectToken, providerAudience } from './wif-subject-token.js';

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

/** What a credential configuration that runs `tpm-jwt wif-token` says, checked. */
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
  /** The wif-token command's arguments: the key, its TCTI, the issuer and subject. */
  readonly command: WifTokenArgs;
  /** Where it was read from: relative key and descriptor paths are resolved against it. */
  readonly file: string;
  /** The service account it impersonates, if any. */
  readonly serviceAccount: string | undefined;
}

type IdentityPoolClientOptions = ConstructorParameters<typeof IdentityPoolClient>[0];

/**
 * Reads a credential configuration that runs `tpm-jwt wif-token` (what wif-config
 * writes). Its TCTI is held to the kinds a file may name (tcti-trust.ts) when the
 * signer is opened; its token_url and service_account_impersonation_url to Google's
 * endpoints for its universe domain (checkEndpointFromFile), here, before any request.
 * Throws ERR_KEY_FILE_INVALID for a file that is not JSON, ERR_INVALID_ARGUMENT for
 * another kind of configuration or an endpoint a file may not name.
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
    credential_source?: { executable?: { command?: string } };
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
  if (config.type !== 'external_account' || typeof command !== 'string' || typeof config.audience !== 'string') {
    throw invalidArgument(`${file} is not an external_account configuration with an executable source`);
  }
  // The subject token goes to token_url, the federated token to the impersonation URL.
  const universeDomain = checkUniverseDomainFromFile(config.universe_domain, file);
  const tokenUrl =
    config.token_url === undefined
      ? undefined
      : checkEndpointFromFile(config.token_url, 'token_url', 'sts', universeDomain, file);
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
  return {
    options: {
      type: 'external_account',
      audience: config.audience,
      subject_token_type: config.subject_token_type ?? 'urn:ietf:params:oauth:token-type:jwt',
      ...(tokenUrl !== undefined && { token_url: tokenUrl }),
      ...(impersonation !== undefined && { service_account_impersonation_url: impersonation }),
      ...(config.service_account_impersonation !== undefined && {
        service_account_impersonation: config.service_account_impersonation,
      }),
      ...(config.universe_domain !== undefined && { universe_domain: config.universe_domain }),
    },
    command: parseWifTokenCommand(command),
    file,
    serviceAccount: impersonatedAccount(impersonation),
  };
}

/** The email in an impersonation URL (…/serviceAccounts/EMAIL:generateAccessToken). */
function impersonatedAccount(url: string | undefined): string | undefined {
  return url === undefined ? undefined : iamAccount(url, 'generateAccessToken');
}

/**
 * Opens the signer a configuration's command names, held to the rules of any file
 * that names a TPM key (service-account.ts): a checked TCTI, a key file that is a
 * regular file, auth from a named variable; and --no-encrypt only for a device TCTI
 * (tcti-trust.ts). Throws ERR_INVALID_ARGUMENT before connecting for what a file may
 * not ask. The caller closes it.
 */
export async function openWifSigner(configuration: WifConfiguration): Promise<Signer> {
  const { key, credentials, tcti, kid, authEnv, pcrs, encrypt } = configuration.command;
  const origin = { file: configuration.file };
  if (credentials !== undefined) {
    return (await openServiceAccountFile(path.resolve(path.dirname(configuration.file), credentials))).signer;
  }
  const tpm = {
    key: key!,
    ...(tcti !== undefined && { tcti }),
    ...(authEnv !== undefined && { auth_env: authEnv }),
    ...(pcrs !== undefined && { pcrs }),
  };
  const options = await tpmSignerOptions({ tpm, ...(kid !== undefined && { private_key_id: kid }) }, origin);
  checkEncryptFromFile(encrypt, options.tcti, configuration.file);
  return TpmSigner.open({ ...options, ...(encrypt !== undefined && { encrypt }) });
}

/** The supplier for a configuration's subject tokens, signed by `signer`. */
export function wifSubjectTokenSupplier(configuration: WifConfiguration, signer: Signer): SubjectTokenSupplier {
  const { issuer, subject, lifetime, audience } = configuration.command;
  return tpmSubjectTokenSupplier({
    signer,
    issuer,
    ...(subject !== undefined && { subject }),
    ...(lifetime !== undefined && { lifetime }),
    ...(audience !== undefined && { audience }),
  });
}

/** An IdentityPoolClient that signs its subject tokens in the TPM; close() releases the TPM. */
export class TpmIdentityPoolClient extends IdentityPoolClient {
  readonly #signer: Signer;

  private constructor(options: IdentityPoolClientOptions, signer: Signer) {
    super(options);
    this.#signer = signer;
  }

  /**
   * The client for a credential configuration that runs `tpm-jwt wif-token` (what
   * wif-config writes): the same audience, token URL and impersonation, the key and
   * issuer from its command, and the subject tokens signed here instead of by a
   * subprocess. Throws as readWifConfiguration does.
   */
  static async fromCredentialConfiguration(file: string): Promise<TpmIdentityPoolClient> {
    const configuration = await readWifConfiguration(file);
    const signer = await openWifSigner(configuration);
    try {
      return new TpmIdentityPoolClient(
        { ...configuration.options, subject_token_supplier: wifSubjectTokenSupplier(configuration, signer) },
        signer,
      );
    } catch (err) {
      await signer.close?.();
      throw err;
    }
  }

  /** Releases the TPM connection the client opened. */
  async close(): Promise<void> {
    await this.#signer.close?.();
  }
}

/** ERR_TOKEN_EXCHANGE for what the client threw, unless it is already ours (a TPM failure keeps its code). */
function exchangeError(what: string, err: unknown): TpmJwtError {
  if (err instanceof TpmJwtError) return err;
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
