import { writeFileAtomic } from '../../atomic-file.js';
import { TpmJwtError } from '../../errors.js';
import {
  mintSubjectToken,
  providerAudience,
  SUBJECT_TOKEN_TYPES,
  TOKEN_TYPE_ID_TOKEN,
} from '../../google/wif-subject-token.js';
import { optional, required, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { KEY_OPTIONS, openKeySigner } from '../signer-source.js';

// The executable-sourced credential contract of Google's auth libraries (Python, Go,
// Java, .NET, Node): they set these, run the command, and read one JSON object.
const ENV_AUDIENCE = 'GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE';
const ENV_TOKEN_TYPE = 'GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE';
const ENV_OUTPUT_FILE = 'GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE';

export const wifToken: Command = {
  usage: `tpm-jwt wif-token (--key KEYREF | --credentials descriptor.json) --issuer URI
         [--subject S] [--audience AUD] [--lifetime S] [--kid KID] [--auth-env VAR] [--pcrs sha256:0,7]

The executable of a Workload Identity Federation credential configuration
(credential_source.executable.command): Google's auth libraries run it with
${ENV_AUDIENCE}, ${ENV_TOKEN_TYPE} and ${ENV_OUTPUT_FILE} set, and read
{"version":1,"success":true,"token_type":...,"id_token":...,"expiration_time":N} from it
(also written, mode 0600, to the output file); on failure
{"version":1,"success":false,"code":...,"message":...} and a non-zero exit.
The subject token: iss --issuer, sub --subject (default the key's RFC 7638
thumbprint), aud --audience (default https: + the provider audience), 1 h (--lifetime).

  tpm-jwt wif-token --key 0x81008001 --issuer https://devices.example.com`,
  options: {
    ...KEY_OPTIONS,
    kid: { type: 'string' },
    issuer: { type: 'string' },
    subject: { type: 'string' },
    audience: { type: 'string' },
    lifetime: { type: 'string' },
  },
  async run(values, io) {
    const issuer = required(values, 'issuer');
    const stsAudience = io.env[ENV_AUDIENCE];
    const audience = optional(values, 'audience') ?? (stsAudience ? providerAudience(stsAudience) : undefined);
    if (audience === undefined) throw new UsageError(`--audience is required when ${ENV_AUDIENCE} is not set`);
    const tokenType = io.env[ENV_TOKEN_TYPE] || TOKEN_TYPE_ID_TOKEN;
    if (!SUBJECT_TOKEN_TYPES.includes(tokenType)) {
      throw new TpmJwtError('ERR_INVALID_ARGUMENT', `${ENV_TOKEN_TYPE} ${tokenType} is not a JWT token type`);
    }
    const lifetimeText = optional(values, 'lifetime');
    const lifetime = lifetimeText === undefined ? undefined : Number(lifetimeText);
    const { signer } = await openKeySigner(values, io);
    let minted: { token: string; expiry: Date };
    try {
      const subject = optional(values, 'subject');
      minted = await mintSubjectToken(signer, {
        issuer,
        audience,
        ...(subject !== undefined && { subject }),
        ...(lifetime !== undefined && { lifetime }),
      });
    } finally {
      await signer.close?.();
    }
    const response = json({
      version: 1,
      success: true,
      token_type: tokenType,
      id_token: minted.token,
      expiration_time: Math.floor(minted.expiry.getTime() / 1000),
    });
    // Written before it is printed: the libraries read the file on their next run and
    // skip this command while the token is fresh. Replaced every run: the file is theirs.
    const outputFile = io.env[ENV_OUTPUT_FILE];
    if (outputFile) await writeFileAtomic(outputFile, response, { force: true });
    io.out(response);
  },
  // Every failure, a usage error too, answers the libraries in JSON, with the code stderr shows.
  reportFailure(code, message, io) {
    io.out(json({ version: 1, success: false, code, message }));
  },
};
