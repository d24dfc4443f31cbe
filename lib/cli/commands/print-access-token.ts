import { makeTokenSource, type TpmAuthMode } from '../../google/token-sources.js';
import { optional, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { openSigner, SIGNER_OPTIONS } from '../signer-source.js';

export const printAccessToken: Command = {
  usage: `tpm-jwt print-access-token (--key KEYREF --email EMAIL | --credentials F)
         [--mode jwt-access|oauth2] [--scope S ...] [--audience URL] [--token-url URL]
         [--kid KID] [--auth-env VAR] [--pcrs sha256:0,7]

For tools that run a command to get a token. jwt-access (default) prints a
self-signed JWT with a scope claim (or --audience); oauth2 exchanges it for an
OAuth access token at the token endpoint.

  tpm-jwt print-access-token --credentials sa-tpm.json`,
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
      const { token, expiry } = await source.token(audience);
      io.out(
        json({
          access_token: token,
          expires_in: Math.max(0, Math.floor((expiry.getTime() - Date.now()) / 1000)),
          token_type: 'Bearer',
        }),
      );
    } finally {
      await signer.close?.();
    }
  },
};
