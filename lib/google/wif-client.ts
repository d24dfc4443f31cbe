/**
 * Keyless federation inside Node, without a subprocess: google-auth-library's
 * IdentityPoolClient with a subject-token supplier that signs in the TPM.
 */
import { readFile } from 'node:fs/promises';

import { IdentityPoolClient, type SubjectTokenSupplier } from 'google-auth-library';

import type { Signer } from '../crypt/signer.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { CachedToken } from './cached-token.js';
import { parseWifTokenCommand } from './wif-config.js';
import { mintSubjectToken, providerAudience } from './wif-subject-token.js';

export interface TpmSubjectTokenOptions {
  signer: Signer;
  /** The issuer URI the provider was created with. */
  issuer: string;
  /** Default: the RFC 7638 thumbprint of the signer's public key. */
  subject?: string;
  lifetime?: number;
}

/**
 * A subject_token_supplier for IdentityPoolClient: subject tokens signed by `signer`,
 * for the provider audience the client asks for. The client does not cache them, so
 * this does: one signing per token lifetime and audience, shared by concurrent calls.
 */
export function tpmSubjectTokenSupplier(options: TpmSubjectTokenOptions): SubjectTokenSupplier {
  const tokens = new Map<string, CachedToken>();
  return {
    async getSubjectToken({ audience }) {
      let cached = tokens.get(audience);
      if (!cached) {
        cached = new CachedToken(() =>
          mintSubjectToken(options.signer, {
            issuer: options.issuer,
            ...(options.subject !== undefined && { subject: options.subject }),
            audience: providerAudience(audience),
            ...(options.lifetime !== undefined && { lifetime: options.lifetime }),
          }),
        );
        tokens.set(audience, cached);
      }
      return (await cached.get()).token;
    },
  };
}

/** An IdentityPoolClient that signs its subject tokens in the TPM; close() releases the TPM. */
export class TpmIdentityPoolClient extends IdentityPoolClient {
  readonly #signer: Signer;

  private constructor(options: ConstructorParameters<typeof IdentityPoolClient>[0], signer: Signer) {
    super(options);
    this.#signer = signer;
  }

  /**
   * The client for a credential configuration that runs `tpm-jwt wif-token` (what
   * wif-config writes): the same audience, token URL and impersonation, the key and
   * issuer from its command, and the subject tokens signed here instead of by a
   * subprocess. Throws ERR_INVALID_ARGUMENT for another kind of configuration.
   */
  static async fromCredentialConfiguration(file: string): Promise<TpmIdentityPoolClient> {
    let config: {
      type?: string;
      audience?: string;
      subject_token_type?: string;
      token_url?: string;
      service_account_impersonation_url?: string;
      credential_source?: { executable?: { command?: string } };
    };
    try {
      config = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read ${file} as JSON`, { cause: err });
    }
    const command = config.credential_source?.executable?.command;
    if (config.type !== 'external_account' || typeof command !== 'string' || typeof config.audience !== 'string') {
      throw invalidArgument(`${file} is not an external_account configuration with an executable source`);
    }
    const args = parseWifTokenCommand(command);
    const signer = await TpmSigner.open({ key: args.key, ...(args.tcti !== undefined && { tcti: args.tcti }) });
    try {
      return new TpmIdentityPoolClient(
        {
          type: 'external_account',
          audience: config.audience,
          subject_token_type: config.subject_token_type ?? 'urn:ietf:params:oauth:token-type:jwt',
          ...(config.token_url !== undefined && { token_url: config.token_url }),
          ...(config.service_account_impersonation_url !== undefined && {
            service_account_impersonation_url: config.service_account_impersonation_url,
          }),
          subject_token_supplier: tpmSubjectTokenSupplier({
            signer,
            issuer: args.issuer,
            ...(args.subject !== undefined && { subject: args.subject }),
          }),
        },
        signer,
      );
    } catch (err) {
      await signer.close();
      throw err;
    }
  }

  /** Releases the TPM connection the client opened. */
  async close(): Promise<void> {
    await this.#signer.close?.();
  }
}
