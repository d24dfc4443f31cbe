import { TpmJwtError } from '../../errors.js';
import { decode, type Certs } from '../../jwt/decode.js';
import { optional, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { readTextInput } from '../input-file.js';

async function readCerts(path: string, asJson: boolean): Promise<Certs> {
  const text = await readTextInput(path);
  if (!asJson) return text;
  try {
    return JSON.parse(text) as Certs;
  } catch {
    throw new TpmJwtError('ERR_INVALID_ARGUMENT', `${path} is not a JSON JWKS`);
  }
}

export const verify: Command = {
  usage: `tpm-jwt verify (--cert F | --pubkey F | --jwks F) [--audience A] [TOKEN]

Reads TOKEN from the argument or standard input. Checks the signature (RS256,
PS256, ES256 only), iat/exp and, with --audience, aud. Prints the claims as JSON.

  tpm-jwt verify --cert cert.pem --audience https://pubsub.googleapis.com/ "$TOKEN"
  tpm-jwt token --key 0x81008001 --email sa@p.iam.gserviceaccount.com --audience https://x/ \\
    | tpm-jwt verify --cert cert.pem`,
  positionals: true,
  options: {
    cert: { type: 'string' },
    pubkey: { type: 'string' },
    jwks: { type: 'string' },
    audience: { type: 'string' },
  },
  async run(values, io, positionals) {
    const sources = ['cert', 'pubkey', 'jwks'].filter((name) => values[name] !== undefined);
    if (sources.length !== 1) throw new UsageError('give exactly one of --cert, --pubkey or --jwks');
    if (positionals.length > 1) throw new UsageError('give at most one TOKEN');
    const certs = await readCerts(values[sources[0]!] as string, sources[0] === 'jwks');
    const token = (positionals[0] ?? Buffer.from(await io.readStdin()).toString('utf8')).trim();
    const audience = optional(values, 'audience');
    const claims = await decode(token, { certs, ...(audience !== undefined && { audience }) });
    io.out(json(claims));
  },
};
