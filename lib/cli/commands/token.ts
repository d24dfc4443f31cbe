import { MODES, type TpmAuthMode } from '../../google/token-sources.js';
import { Credentials } from '../../jwt/credentials.js';
import { optional, UsageError, type Values } from '../args.js';
import { json, type Command } from '../command.js';
import { openSigner, SIGNER_OPTIONS } from '../signer-source.js';

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
  usage: `tpm-jwt token --key KEYREF --email EMAIL (--audience URL | --scope S ...)
         [--lifetime S] [--kid KID] [--claim k=v ...] [--auth-env VAR] [--pcrs sha256:0,7]
tpm-jwt token --credentials descriptor.json (--audience URL | --scope S ...)
tpm-jwt token (--key KEYREF --email EMAIL | --credentials F) --mode oauth2 [--scope S ...] [--token-url URL]
tpm-jwt token (--key KEYREF --email EMAIL | --credentials F) --mode id-token --target-audience AUD [--token-url URL]

jwt-access (default): a JWT for Authorization: Bearer (AIP-4111), with aud the
service URL or a scope claim. oauth2 and id-token exchange a signed assertion at
the token endpoint. --json adds the expiry.

  tpm-jwt token --key 0x81008001 --email sa@p.iam.gserviceaccount.com --audience https://pubsub.googleapis.com/
  tpm-jwt token --credentials sa-tpm.json --mode id-token --target-audience https://svc.run.app`,
  options: {
    ...SIGNER_OPTIONS,
    audience: { type: 'string' },
    scope: { type: 'string', multiple: true },
    lifetime: { type: 'string' },
    claim: { type: 'string', multiple: true },
    mode: { type: 'string' },
    'token-url': { type: 'string' },
    'target-audience': { type: 'string' },
  },
  async run(values, io) {
    const mode = (optional(values, 'mode') ?? 'jwt-access') as TpmAuthMode;
    if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
    const audience = optional(values, 'audience');
    const scopes = (values['scope'] as string[] | undefined) ?? [];
    if (mode === 'jwt-access' && (audience === undefined) === (scopes.length === 0)) {
      throw new UsageError('give exactly one of --audience or --scope');
    }
    const targetAudience = optional(values, 'target-audience');
    if (mode === 'id-token' && targetAudience === undefined)
      throw new UsageError('--mode id-token needs --target-audience');
    const lifetimeText = optional(values, 'lifetime');
    const tokenLifetime = lifetimeText === undefined ? undefined : Number(lifetimeText);
    if (tokenLifetime !== undefined && !(Number.isInteger(tokenLifetime) && tokenLifetime > 0)) {
      throw new UsageError('--lifetime must be a positive number of seconds');
    }
    const claims = parseClaims(values);

    const { signer, email } = await openSigner(values, io);
    let result: { token: string; expiry: Date };
    try {
      if (mode === 'jwt-access') {
        const credentials = new Credentials(signer, {
          issuer: email,
          subject: email,
          ...(audience !== undefined && { audience }),
          ...(tokenLifetime !== undefined && { tokenLifetime }),
          additionalClaims: { ...claims, ...(scopes.length > 0 && { scope: scopes.join(' ') }) },
        });
        await credentials.refresh();
        result = { token: credentials.token!, expiry: credentials.expiry! };
      } else {
        const tokenUrl = optional(values, 'token-url');
        // The exchange modes' code (and jose) loads only for them.
        const { makeTokenSource } = await import('../../google/token-sources.js');
        const source = makeTokenSource({
          signer: async () => signer,
          email,
          mode,
          ...(scopes.length > 0 && { scopes }),
          ...(tokenUrl !== undefined && { tokenUrl }),
          ...(targetAudience !== undefined && { targetAudience }),
        });
        result = await source.token(undefined);
      }
    } finally {
      await signer.close?.();
    }
    io.out(values['json'] ? json(result) : `${result.token}\n`);
  },
};
