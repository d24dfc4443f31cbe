/**
 * A metadata server's tokens through Workload Identity Federation: no service-account
 * key anywhere. The TPM signs the subject token of the credential configuration that
 * wif-config wrote; STS exchanges it, and IAM impersonates the configured account.
 * One signer and one subject-token cache serve every scope set and audience.
 */
import { IdentityPoolClient } from 'google-auth-library';

import { invalidArgument } from '../errors.js';
import { externalAccountSource, generateIdTokenSource } from '../google/external-account-sources.js';
import { CLOUD_PLATFORM_SCOPE } from '../google/scopes.js';
import { openWifSigner, readWifConfiguration, wifSubjectTokenSupplier } from '../google/wif-client.js';
import { SourcesByKey } from './sources-by-key.js';
import { KEPT_SOURCES, type MetadataTokens } from './tokens.js';

/**
 * The tokens of the credential configuration in `file`, and the service account it
 * impersonates (the email the server reports), if any. Throws as readWifConfiguration
 * does, or the TPM's error when its key cannot be opened.
 */
export async function wifTokens(file: string): Promise<MetadataTokens & { serviceAccount: string | undefined }> {
  const configuration = await readWifConfiguration(file);
  const signer = await openWifSigner(configuration);
  const supplier = wifSubjectTokenSupplier(configuration, signer);
  const { service_account_impersonation_url: impersonation, ...federated } = configuration.options;
  const client = (scopes: string[], impersonate: boolean) =>
    new IdentityPoolClient({
      ...(impersonate ? configuration.options : federated),
      scopes,
      subject_token_supplier: supplier,
    });
  const access = new SourcesByKey((key) => externalAccountSource(client(key.split(' '), true)), KEPT_SOURCES);
  let identity: SourcesByKey | undefined;
  if (impersonation !== undefined) {
    const url = impersonation.replace(/:generateAccessToken$/, ':generateIdToken');
    const caller = client([CLOUD_PLATFORM_SCOPE], false);
    identity = new SourcesByKey((audience) => generateIdTokenSource(caller, url, audience), KEPT_SOURCES);
  }
  return {
    serviceAccount: configuration.serviceAccount,
    accessToken: (scopes) => access.get(scopes.join(' ')).token(undefined),
    async idToken(audience) {
      if (!identity) {
        throw invalidArgument('ID tokens need a service account to impersonate (wif-config --service-account)');
      }
      return identity.get(audience).token(undefined);
    },
    close: () => signer.close(),
  };
}
