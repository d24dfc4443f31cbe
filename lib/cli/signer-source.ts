/** The signer and service-account email a token command uses: --key/--email or --credentials. */
import { openServiceAccountFile } from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { parsePcrs } from '../tpm/pcrs.js';
import { authFromEnv, flagValue, optional, required, UsageError, type OptionSpec, type Values } from './args.js';
import { tpmOptions, type Io } from './command.js';

export const SIGNER_OPTIONS = {
  key: { type: 'string' },
  email: { type: 'string' },
  credentials: { type: 'string' },
  kid: { type: 'string' },
  'auth-env': { type: 'string' },
  pcrs: { type: 'string' },
} as const satisfies OptionSpec;

/** Opens the signer; the caller closes it (signer.close). */
export async function openSigner(values: Values, io: Io): Promise<{ signer: Signer; email: string }> {
  const descriptor = optional(values, 'credentials');
  if (descriptor !== undefined) {
    if (values['key'] !== undefined) throw new UsageError('give --key or --credentials, not both');
    const { info, signer } = await openServiceAccountFile(descriptor);
    return { signer, email: optional(values, 'email') ?? info.client_email! };
  }
  const email = required(values, 'email');
  const auth = authFromEnv(values, io.env);
  const kid = optional(values, 'kid');
  const pcrs = optional(values, 'pcrs');
  const signer = await TpmSigner.open({
    ...tpmOptions(values),
    key: required(values, 'key'),
    ...(pcrs !== undefined && { pcrs: flagValue('pcrs', pcrs, parsePcrs) }),
    ...(auth !== undefined && { auth }),
    ...(kid !== undefined && { keyId: kid }),
  });
  return { signer, email };
}
