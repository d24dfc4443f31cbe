import { readFile } from 'node:fs/promises';

import { CLOUD_PLATFORM_SCOPE, makeTokenSource, type TpmAuthMode } from '../../google/token-sources.js';
import type { ExpiringToken } from '../../jwt/token-cache.js';
import { optional, UsageError } from '../args.js';
import { json, type Command, type Io } from '../command.js';
import { openSigner, SIGNER_OPTIONS } from '../signer-source.js';

export const printAccessToken: Command = {
  usage: `tpm-jwt print-access-token (--key KEYREF --email EMAIL | --credentials F)
         [--mode jwt-access|oauth2] [--scope S ...] [--audience URL] [--token-url URL]
         [--kid KID] [--auth-env VAR] [--pcrs sha256:0,7]

For tools that run a command to get a token. jwt-access (default) prints a
self-signed JWT with a scope claim (or --audience); oauth2 exchanges it for an
OAuth access token at the token endpoint. --credentials may also be a credential
configuration wif-config wrote (JWKS or X.509): the token is then the federated one
(impersonated when it names a service account), for --scope (default cloud-platform).

  tpm-jwt print-access-token --credentials sa-tpm.json
  tpm-jwt print-access-token --credentials wif/credential-configuration.json`,
  options: {
    ...SIGNER_OPTIONS,
    mode: { type: 'string' },
    scope: { type: 'string', multiple: true },
    audience: { type: 'string' },
    'token-url': { type: 'string' },
  },
  async run(values, io) {
    const mode = (optional(values, 'mode') ?? 'jwt-access') as TpmAuthMode;
    if (mode !== 'jwt-access' && mode !== 'oauth2') throw new UsageError('--mode must be jwt-access or oauth2');
    const scopes = (values['scope'] as string[] | undefined) ?? [];
    const audience = optional(values, 'audience');
    if (audience !== undefined && scopes.length > 0) throw new UsageError('give --audience or --scope, not both');
    const tokenUrl = optional(values, 'token-url');
    const credentials = optional(values, 'credentials');
    if (credentials !== undefined && (await isExternalAccount(credentials))) {
      // The configuration names the key, its TPM and how it signs.
      const flags = ['key', 'email', 'mode', 'audience', 'token-url', 'kid', 'tcti', 'auth-env', 'pcrs', 'no-encrypt'];
      const ignored = flags.find((f) => values[f] !== undefined);
      if (ignored !== undefined) throw new UsageError(`--${ignored} does not go with a federation configuration`);
      return printToken(io, await federatedToken(credentials, scopes));
    }
    const { signer, email } = await openSigner(values, io);
    try {
      const source = makeTokenSource({
        signer: async () => signer,
        email,
        mode,
        ...(scopes.length > 0 && { scopes }),
        ...(audience !== undefined && { audience }),
        ...(tokenUrl !== undefined && { tokenUrl }),
      });
      printToken(io, await source.token(audience));
    } finally {
      await signer.close?.();
    }
  },
};

/** Whether `file` is an external_account configuration (federation), not a service-account file. */
async function isExternalAccount(file: string): Promise<boolean> {
  try {
    return (JSON.parse(await readFile(file, 'utf8')) as { type?: unknown } | null)?.type === 'external_account';
  } catch {
    // The descriptor's own reader says what is wrong with it.
    return false;
  }
}

/** The federated access token of a credential configuration for the TPM key (google-auth-library loaded only here). */
async function federatedToken(file: string, scopes: string[]): Promise<ExpiringToken> {
  const { federatedAccessToken, openWifIdentity, readWifConfiguration, wifClient } =
    await import('../../google/wif-client.js');
  const configuration = await readWifConfiguration(file);
  const identity = await openWifIdentity(configuration);
  try {
    return await federatedAccessToken(
      wifClient(configuration, identity, { scopes: scopes.length > 0 ? scopes : [CLOUD_PLATFORM_SCOPE] }),
    );
  } finally {
    await identity.close();
  }
}

/** The token as gcloud auth print-access-token --format=json and executable sources print it. */
function printToken(io: Io, { token, expiry }: ExpiringToken): void {
  io.out(
    json({
      access_token: token,
      expires_in: Math.max(0, Math.floor((expiry.getTime() - Date.now()) / 1000)),
      token_type: 'Bearer',
    }),
  );
}
