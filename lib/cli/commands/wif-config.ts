import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';

import { TpmJwtError } from '../../errors.js';
import { cliBin } from '../../package.js';
import {
  checkProvider,
  credentialConfiguration,
  gcloudCommands,
  stsAudience,
  wifTokenCommand,
} from '../../google/wif-config.js';
import { STS_ALGORITHMS } from '../../google/wif-subject-token.js';
import { keyThumbprint, publicJwk } from '../../jwk.js';
import { parseKeyRef } from '../../tpm/handle.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { optional, required } from '../args.js';
import { json, withTpm, type Command } from '../command.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/** This CLI as the libraries will run it: node, then the package's own bin. */
function thisCli(): string[] {
  return [process.execPath, cliBin()];
}

export const wifConfig: Command = {
  usage: `tpm-jwt wif-config --key KEYREF --project-number N --pool P --provider V --issuer URI
         [--service-account EMAIL] [--subject S] [--out-dir D] [--force] [--token-url URL] [--executable PATH]

Writes, for keyless Workload Identity Federation with the key, to --out-dir (default .):
  jwks.json                      the key's JWKS, for create-oidc --jwk-json-path
  credential-configuration.json  for GOOGLE_APPLICATION_CREDENTIALS: an executable
                                 source that runs tpm-jwt wif-token (with --service-account,
                                 through service-account impersonation)
and prints the gcloud commands that create the pool, the provider and the grant.
The subject is the key's RFC 7638 thumbprint unless --subject. Existing files are
kept unless --force. --token-url names another STS endpoint; --executable, the
tpm-jwt the configuration runs (default: this one, with node).

  tpm-jwt wif-config --key 0x81008001 --project-number 123456789 --pool devices \\
    --provider tpm-keys --issuer https://devices.example.com --out-dir /etc/tpm-jwt`,
  options: {
    key: { type: 'string' },
    'project-number': { type: 'string' },
    pool: { type: 'string' },
    provider: { type: 'string' },
    issuer: { type: 'string' },
    'service-account': { type: 'string' },
    subject: { type: 'string' },
    'out-dir': { type: 'string' },
    'token-url': { type: 'string' },
    executable: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(values, io) {
    const provider = {
      projectNumber: required(values, 'project-number'),
      pool: required(values, 'pool'),
      provider: required(values, 'provider'),
      issuer: required(values, 'issuer'),
    };
    checkProvider(provider);
    const serviceAccount = optional(values, 'service-account');
    const outDir = path.resolve(optional(values, 'out-dir') ?? '.');
    const force = values['force'] === true;
    const jwksPath = path.join(outDir, 'jwks.json');
    const configPath = path.join(outDir, 'credential-configuration.json');
    await refuseExisting([jwksPath, configPath], force);
    const ref = required(values, 'key');
    // The libraries run the command from anywhere: a key file is named absolutely.
    const keyRef = 'path' in parseKeyRef(ref) ? path.resolve(ref) : ref;
    const key = await withTpm(values, (tpm) => loadKeyRef(tpm, keyRef));
    const alg = key.algorithms.find((a) => STS_ALGORITHMS.includes(a));
    if (alg === undefined) {
      throw new TpmJwtError(
        'ERR_TPM_UNSUPPORTED',
        `STS accepts ${STS_ALGORITHMS.join(' and ')}; this key signs ${key.algorithms.join(', ')}`,
      );
    }
    const jwk = publicJwk(key.publicKey, alg);
    const subject = optional(values, 'subject') ?? keyThumbprint(key.publicKey);
    const tcti = optional(values, 'tcti');
    const executable = optional(values, 'executable');
    const command = wifTokenCommand(executable === undefined ? thisCli() : [path.resolve(executable)], {
      key: keyRef,
      issuer: provider.issuer,
      ...(optional(values, 'subject') !== undefined && { subject }),
      ...(tcti !== undefined && { tcti }),
      ...(values['no-encrypt'] === true && { encrypt: false }),
    });
    const tokenUrl = optional(values, 'token-url');
    const config = credentialConfiguration(provider, {
      command,
      // One file per key and audience: a shared one would hand one key's token to another.
      outputFile: path.join(outDir, `wif-token-${jwk.kid}-${provider.pool}-${provider.provider}.json`),
      ...(serviceAccount !== undefined && { serviceAccount }),
      ...(tokenUrl !== undefined && { tokenUrl }),
    });
    // An output directory that does not exist yet is made, for this user only: the
    // libraries' token cache goes there too.
    await mkdir(outDir, { recursive: true, mode: 0o700 });
    await writeOutput(jwksPath, json({ keys: [jwk] }), force);
    await writeOutput(configPath, json(config), force);
    io.err(`wrote ${jwksPath} and ${configPath} (audience ${stsAudience(provider)}, subject ${subject})\n`);
    const commands = gcloudCommands(provider, {
      jwksPath,
      subject,
      ...(serviceAccount !== undefined && { serviceAccount }),
    });
    io.out(`${commands.join('\n')}\n`);
  },
};
