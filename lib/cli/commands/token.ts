import { TpmSigner } from '../../crypt/tpm-signer.js';
import type { Signer } from '../../crypt/signer.js';
import { Credentials } from '../../jwt/credentials.js';
import { parsePcrs } from '../../tpm/pcrs.js';
import { authFromEnv, optional, required, UsageError, type Values } from '../args.js';
import { json, tpmOptions, type Command } from '../command.js';

/** --claim k=v: the value as JSON when it parses (numbers, booleans, objects), else text. */
function parseClaims(values: Values): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  for (const pair of (values['claim'] as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--claim ${pair}: expected name=value`);
    const value = pair.slice(eq + 1);
    try {
      claims[pair.slice(0, eq)] = JSON.parse(value);
    } catch {
      claims[pair.slice(0, eq)] = value;
    }
  }
  return claims;
}

export const token: Command = {
  name: 'token',
  summary: 'mint a self-signed JWT access token',
  usage: `tpm-jwt token --key KEYREF --email EMAIL (--audience URL | --scope S ...) [--lifetime S] [--kid KID] [--claim k=v ...] [--auth-env VAR] [--pcrs sha256:0,7]
tpm-jwt token --credentials descriptor.json (--audience URL | --scope S ...)

Prints a JWT for Authorization: Bearer (AIP-4111): aud is the service URL, or a
scope claim when --scope is given. --json adds its expiry.

  tpm-jwt token --key 0x81008001 --email sa@p.iam.gserviceaccount.com --audience https://pubsub.googleapis.com/
  tpm-jwt token --credentials sa-tpm.json --scope https://www.googleapis.com/auth/cloud-platform`,
  options: {
    key: { type: 'string' },
    email: { type: 'string' },
    credentials: { type: 'string' },
    audience: { type: 'string' },
    scope: { type: 'string', multiple: true },
    lifetime: { type: 'string' },
    kid: { type: 'string' },
    claim: { type: 'string', multiple: true },
    'auth-env': { type: 'string' },
    pcrs: { type: 'string' },
  },
  async run(values, io) {
    const audience = optional(values, 'audience');
    const scopes = (values['scope'] as string[] | undefined) ?? [];
    if ((audience === undefined) === (scopes.length === 0)) {
      throw new UsageError('give exactly one of --audience or --scope');
    }
    const lifetimeText = optional(values, 'lifetime');
    const tokenLifetime = lifetimeText === undefined ? undefined : Number(lifetimeText);
    if (tokenLifetime !== undefined && !(Number.isInteger(tokenLifetime) && tokenLifetime > 0)) {
      throw new UsageError('--lifetime must be a positive number of seconds');
    }
    const additionalClaims = { ...parseClaims(values), ...(scopes.length > 0 && { scope: scopes.join(' ') }) };
    const options = {
      ...(audience !== undefined && { audience }),
      ...(tokenLifetime !== undefined && { tokenLifetime }),
      additionalClaims,
    };

    let credentials: Credentials;
    const descriptor = optional(values, 'credentials');
    if (descriptor !== undefined) {
      if (values['key'] !== undefined) throw new UsageError('give --key or --credentials, not both');
      credentials = await Credentials.fromServiceAccountFile(descriptor, options);
    } else {
      const email = required(values, 'email');
      const auth = authFromEnv(values, io.env);
      const kid = optional(values, 'kid');
      const pcrs = optional(values, 'pcrs');
      const signer: Signer = await TpmSigner.open({
        ...tpmOptions(values),
        key: required(values, 'key'),
        ...(pcrs !== undefined && { pcrs: parsePcrs(pcrs) }),
        ...(auth !== undefined && { auth }),
        ...(kid !== undefined && { keyId: kid }),
      });
      credentials = new Credentials(signer, { issuer: email, subject: email, ...options });
    }
    try {
      await credentials.refresh();
    } finally {
      await credentials.signer.close?.();
    }
    io.out(values['json'] ? json({ token: credentials.token, expiry: credentials.expiry }) : `${credentials.token}\n`);
  },
};
