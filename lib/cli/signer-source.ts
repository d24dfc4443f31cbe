/** The signer and service-account email a token command uses: --key/--email or --credentials. */
import { openServiceAccountFile, type ServiceAccountInfo } from '../crypt/service-account.js';
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

/**
 * Opens the signer --credentials or --key (with --tcti, --auth-env, --pcrs, --kid)
 * names, and the descriptor's info when there is one; the caller closes the signer.
 */
export async function openKeySigner(values: Values, io: Io): Promise<{ signer: Signer; info?: ServiceAccountInfo }> {
  const descriptor = optional(values, 'credentials');
  if (descriptor !== undefined) {
    if (values['key'] !== undefined) throw new UsageError('give --key or --credentials, not both');
    return openServiceAccountFile(descriptor);
  }
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
  return { signer };
}

/**
 * The signer and the service account's email (--email, or the descriptor's
 * client_email), and the descriptor's info when there is one.
 */
export async function openSigner(
  values: Values,
  io: Io,
): Promise<{ signer: Signer; email: string; info?: ServiceAccountInfo }> {
  // Checked first: a missing --email is a usage error, not a reason to open the TPM.
  const email = values['credentials'] === undefined ? required(values, 'email') : optional(values, 'email');
  const { signer, info } = await openKeySigner(values, io);
  return { signer, email: email ?? info!.client_email!, ...(info && { info }) };
}
