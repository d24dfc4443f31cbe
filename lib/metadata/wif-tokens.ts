/**
 * A metadata server's tokens through Workload Identity Federation: no service-account
 * key anywhere. The TPM signs the subject token of the credential configuration that
 * wif-config wrote; STS exchanges it, and IAM impersonates the configured account.
 * One signer and one subject-token cache serve every scope set and audience.
 */
import { invalidArgument } from '../errors.js';
import { otherIamMethod } from '../google/iam-credentials.js';
import { CLOUD_PLATFORM_SCOPE } from '../google/token-sources.js';
import {
  federatedAccessToken,
  generatedIdToken,
  openWifIdentity,
  readWifConfiguration,
  wifClient,
  type WifIdentity,
  type WifIdentityOptions,
} from '../google/wif-client.js';
import { TokenCache } from '../jwt/token-cache.js';
import { tokenAtRate, type NewKeyRate } from './new-key-rate.js';
import { keyScopes, KEPT_KEYS, scopeKey, type MetadataTokens } from './tokens.js';

interface WifTokens extends MetadataTokens {
  /** The service account the configuration impersonates (the email to report), if any. */
  readonly serviceAccount: string | undefined;
  /** The TPM key opened for the subject tokens (closed by close()). */
  readonly identity: WifIdentity;
}

/**
 * The tokens of the credential configuration in `file`, new scope sets and audiences at
 * the pace `newKeys` allows (default unlimited). Throws as readWifConfiguration does, or
 * the TPM's error when its key cannot be opened.
 */
export async function wifTokens(
  file: string,
  defaultScopes: readonly string[],
  newKeys?: NewKeyRate,
  options: WifIdentityOptions = {},
): Promise<WifTokens> {
  const configuration = await readWifConfiguration(file);
  const identity = await openWifIdentity(configuration, options);
  const { serviceAccount } = configuration;
  const impersonation = configuration.options.service_account_impersonation_url;
  const client = (scopes: string[], impersonate: boolean) =>
    wifClient(configuration, identity, { scopes, impersonate });
  // A client per exchange: the cache, not the client, keeps the token.
  const access = new TokenCache((key: string) => federatedAccessToken(client(keyScopes(key), true)), {
    maxSize: KEPT_KEYS,
    pinned: [scopeKey(defaultScopes)],
    refreshAhead: true,
  });
  // generateIdToken sits beside generateAccessToken (serviceAccount is set only when the
  // impersonation URL has that form), called with the federated token: one client, so
  // one exchange, for every audience.
  let idTokens: TokenCache | undefined;
  if (serviceAccount !== undefined) {
    const caller = client([CLOUD_PLATFORM_SCOPE], false);
    const url = otherIamMethod(impersonation!, 'generateAccessToken', 'generateIdToken');
    idTokens = new TokenCache((audience) => generatedIdToken(caller, url, audience), {
      maxSize: KEPT_KEYS,
      refreshAhead: true,
    });
  }
  return {
    serviceAccount,
    identity,
    accessToken: async (scopes) => tokenAtRate(access, scopeKey(scopes), newKeys),
    keptAccessToken: (scopes) => access.peek(scopeKey(scopes)),
    idTokens: idTokens !== undefined,
    async idToken(audience) {
      if (!idTokens) throw invalidArgument('ID tokens need a service account to impersonate');
      return tokenAtRate(idTokens, audience, newKeys);
    },
    close: () => identity.close(),
  };
}
