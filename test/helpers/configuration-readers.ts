/** Every in-process reader of WIF credential configurations, as a user reaches it. */
import { TpmIdentityPoolClient } from '../../lib/google/index.js';
import { startMetadataServer } from '../../lib/metadata/index.js';

/** [name, open the file as that reader]: each result is closed by the caller. */
export function configurationReaders(email: string): [string, (file: string) => Promise<{ close(): Promise<void> }>][] {
  return [
    [
      'TpmIdentityPoolClient.fromCredentialConfiguration',
      (file) => TpmIdentityPoolClient.fromCredentialConfiguration(file),
    ],
    [
      'startMetadataServer({ mode: wif })',
      (file) => startMetadataServer({ mode: 'wif', credentialConfiguration: file, email, port: 0 }),
    ],
  ];
}
