/** The signer and service-account email a token command uses: --key/--email or --credentials. */
import type { KeyObject } from 'node:crypto';

import type { JwsAlgorithm } from '../algorithms.js';
import { openServiceAccountFile, type ServiceAccountInfo } from '../crypt/service-account.js';
import { signerPublicKey, type Signer } from '../crypt/signer.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { keyThumbprint } from '../jwk.js';
import { KEY_USE_OPTIONS, keyUse, optional, required, UsageError, type OptionSpec, type Values } from './args.js';
import { tpmOptions, type Io } from './command.js';

/** The key a command signs with: --key (with --auth-env, --pcrs) or --credentials. */
export const KEY_OPTIONS = {
  key: { type: 'string' },
  credentials: { type: 'string' },
  ...KEY_USE_OPTIONS,
} as const satisfies OptionSpec;

/** The key, the kid of the tokens it signs, and the service account's email. */
export const SIGNER_OPTIONS = {
  ...KEY_OPTIONS,
  email: { type: 'string' },
  kid: { type: 'string' },
} as const satisfies OptionSpec;

/**
 * Opens the signer --credentials or --key (with --tcti, --auth-env, --pcrs, --kid)
 * names, and the descriptor's info when there is one; the caller closes the signer.
 * Its key id is --kid, else the descriptor's private_key_id, else with `defaultKid`
 * the key's RFC 7638 thumbprint (as pubkey and wif-config name it in a JWKS).
 */
export async function openKeySigner(
  values: Values,
  io: Io,
  options: { defaultKid?: boolean; alg?: JwsAlgorithm } = {},
): Promise<{ signer: Signer; info?: ServiceAccountInfo }> {
  const kid = optional(values, 'kid');
  const descriptor = optional(values, 'credentials');
  let opened: { signer: Signer; info?: ServiceAccountInfo };
  if (descriptor !== undefined) {
    if (values['key'] !== undefined) throw new UsageError('give --key or --credentials, not both');
    opened = await openServiceAccountFile(descriptor);
  } else {
    const signer = await TpmSigner.open({
      ...tpmOptions(values),
      key: required(values, 'key'),
      ...keyUse(values, io.env),
      ...(kid !== undefined && { keyId: kid }),
      ...(options.alg !== undefined && { alg: options.alg }),
    });
    opened = { signer };
  }
  const { signer } = opened;
  const publicKey = signerPublicKey(signer);
  const keyId = kid ?? signer.keyId ?? (options.defaultKid && publicKey ? keyThumbprint(publicKey) : undefined);
  return keyId === signer.keyId ? opened : { ...opened, signer: withKeyId(signer, keyId!) };
}

/**
 * `use` called with the signer openKeySigner opens (`alg`: another algorithm of its key),
 * which is closed after, whatever `use` does.
 */
export async function withKeySigner<T>(
  values: Values,
  io: Io,
  use: (signer: Signer) => Promise<T>,
  options: { alg?: JwsAlgorithm } = {},
): Promise<T> {
  const { signer } = await openKeySigner(values, io, options);
  try {
    return await use(signer);
  } finally {
    await signer.close?.();
  }
}

/**
 * `signer` under another key id. Its key and public key stay where the metadata
 * server's policy gate and the STS subject token look for them (by shape).
 */
function withKeyId(signer: Signer, keyId: string): Signer {
  const { key, publicKey } = signer as { key?: unknown; publicKey?: KeyObject };
  return {
    algorithm: signer.algorithm,
    keyId,
    ...(key !== undefined && { key }),
    ...(publicKey !== undefined && { publicKey }),
    sign: (message) => signer.sign(message),
    close: async () => await signer.close?.(),
  } as Signer;
}

/**
 * The signer and the service account's email (--email, or the descriptor's
 * client_email), and the descriptor's info when there is one.
 */
export async function openSigner(
  values: Values,
  io: Io,
  options: { defaultKid?: boolean } = {},
): Promise<{ signer: Signer; email: string; info?: ServiceAccountInfo }> {
  // Checked first: a missing --email is a usage error, not a reason to open the TPM.
  const email = values['credentials'] === undefined ? required(values, 'email') : optional(values, 'email');
  const { signer, info } = await openKeySigner(values, io, options);
  return { signer, email: email ?? info!.client_email!, ...(info && { info }) };
}
