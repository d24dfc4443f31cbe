import { azureClientAssertion, DEFAULT_AUTHORITY_HOST } from '../../azure/client-assertion.js';
import { KEY_USE_OPTIONS, optional, required, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { readTextInput } from '../input-file.js';
import { withKeySigner } from '../signer-source.js';

export const azureAssertion: Command = {
  usage: `tpm-jwt azure-assertion --key KEYREF --tenant-id T --client-id C --certificate cert.pem
        [--alg PS256|RS256] [--authority-host URL] [--lifetime S] [--auth-env VAR] [--pcrs sha256:0,7]

A Microsoft Entra client assertion signed in the TPM, for the app registration that
holds cert.pem (the key's certificate: tpm-jwt cert, or one a CA issued): what a
token request sends as client_assertion. PS256 unless --alg RS256. --authority-host
defaults to AZURE_AUTHORITY_HOST, as the Azure SDKs read it.

  tpm-jwt cert --key 0x81008002 --subject my-app > cert.pem   # upload to the app registration
  tpm-jwt azure-assertion --key 0x81008002 --tenant-id contoso.onmicrosoft.com \\
    --client-id 00000000-0000-0000-0000-000000000000 --certificate cert.pem`,
  options: {
    key: { type: 'string' },
    'tenant-id': { type: 'string' },
    'client-id': { type: 'string' },
    certificate: { type: 'string' },
    alg: { type: 'string' },
    'authority-host': { type: 'string' },
    lifetime: { type: 'string' },
    ...KEY_USE_OPTIONS,
  },
  async run(values, io) {
    const tenantId = required(values, 'tenant-id');
    const clientId = required(values, 'client-id');
    const alg = optional(values, 'alg') ?? 'PS256';
    if (alg !== 'PS256' && alg !== 'RS256') throw new UsageError('--alg must be PS256 or RS256');
    const lifetimeText = optional(values, 'lifetime');
    const lifetime = lifetimeText === undefined ? undefined : Number(lifetimeText);
    const certificate = await readTextInput(required(values, 'certificate'), { what: 'certificate' });
    const assertion = await withKeySigner(
      values,
      io,
      (signer) =>
        azureClientAssertion(signer, {
          tenantId,
          clientId,
          certificate,
          authorityHost:
            optional(values, 'authority-host') ??
            (io.env['AZURE_AUTHORITY_HOST'] || undefined) ??
            DEFAULT_AUTHORITY_HOST,
          ...(lifetime !== undefined && { lifetime }),
        }),
      { alg },
    );
    io.out(`${assertion}\n`);
  },
};
