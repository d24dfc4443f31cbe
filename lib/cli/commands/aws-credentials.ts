import { createSession } from '../../aws/roles-anywhere.js';
import { TpmSigner } from '../../crypt/tpm-signer.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { KEY_USE_OPTIONS, keyUse, optional, required, UsageError } from '../args.js';
import { withTpm, type Command } from '../command.js';
import { readTextInput } from '../input-file.js';

export const awsCredentials: Command = {
  usage: `tpm-jwt aws-credentials --key KEYREF --certificate cert.pem [--chain chain.pem]
        --trust-anchor-arn A --profile-arn P --role-arn R [--region R] [--session-duration S]
        [--role-session-name N] [--endpoint URL] [--ca-cert F] [--auth-env VAR] [--pcrs sha256:0,7]

AWS IAM Roles Anywhere's CreateSession, signed in the TPM (SigV4-X509), printed as the JSON
credential_process reads, so every AWS SDK and the aws CLI use it from ~/.aws/config:

  [profile device]
  credential_process = tpm-jwt aws-credentials --key 0x81008001 --certificate /etc/device/cert.pem ...

(the whole command on that one line, with its three ARNs).`,
  options: {
    key: { type: 'string' },
    certificate: { type: 'string' },
    chain: { type: 'string' },
    'trust-anchor-arn': { type: 'string' },
    'profile-arn': { type: 'string' },
    'role-arn': { type: 'string' },
    region: { type: 'string' },
    'session-duration': { type: 'string' },
    'role-session-name': { type: 'string' },
    endpoint: { type: 'string' },
    'ca-cert': { type: 'string' },
    ...KEY_USE_OPTIONS,
  },
  async run(values, io) {
    const ref = required(values, 'key');
    const durationText = optional(values, 'session-duration');
    const durationSeconds = durationText === undefined ? undefined : Number(durationText);
    if (durationSeconds !== undefined && !Number.isInteger(durationSeconds)) {
      throw new UsageError('--session-duration must be a whole number of seconds');
    }
    const text = async (flag: string, what: string) => {
      const file = optional(values, flag);
      return file === undefined ? undefined : readTextInput(file, { what });
    };
    const certificate = await readTextInput(required(values, 'certificate'), { what: 'certificate' });
    const chain = await text('chain', 'certificate chain');
    const ca = await text('ca-cert', 'CA certificate');
    const region = optional(values, 'region');
    const roleSessionName = optional(values, 'role-session-name');
    const endpoint = optional(values, 'endpoint');
    const options = {
      certificate,
      trustAnchorArn: required(values, 'trust-anchor-arn'),
      profileArn: required(values, 'profile-arn'),
      roleArn: required(values, 'role-arn'),
      ...(chain !== undefined && { chain }),
      ...(ca !== undefined && { ca }),
      ...(region !== undefined && { region }),
      ...(durationSeconds !== undefined && { durationSeconds }),
      ...(roleSessionName !== undefined && { roleSessionName }),
      ...(endpoint !== undefined && { endpoint }),
    };
    const use = keyUse(values, io.env);
    const credentials = await withTpm(values, async (tpm) =>
      createSession(TpmSigner.fromKey(await loadKeyRef(tpm, ref, use)), options),
    );
    // One line: credential_process reads the whole of standard output as JSON.
    io.out(`${JSON.stringify(credentials)}\n`);
  },
};
