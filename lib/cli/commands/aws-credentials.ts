import { createSession } from '../../aws/roles-anywhere.js';
import { ROLES_ANYWHERE_OPTIONS, ROLES_ANYWHERE_USAGE, rolesAnywhereOptions } from '../aws-flags.js';
import type { Command } from '../command.js';
import { withKeySigner } from '../signer-source.js';

export const awsCredentials: Command = {
  usage: `tpm-jwt aws-credentials ${ROLES_ANYWHERE_USAGE}

AWS IAM Roles Anywhere's CreateSession, signed in the TPM (SigV4-X509), printed as the JSON
credential_process reads, so every AWS SDK and the aws CLI use it from ~/.aws/config, as
credential_process = tpm-jwt aws-credentials ... (the whole command on that one line):

  tpm-jwt aws-credentials --key 0x81008001 --certificate /etc/device/cert.pem \\
    --trust-anchor-arn "$TRUST_ANCHOR_ARN" --profile-arn "$PROFILE_ARN" --role-arn "$ROLE_ARN"`,
  options: ROLES_ANYWHERE_OPTIONS,
  async run(values, io) {
    const options = await rolesAnywhereOptions(values, io.env);
    const credentials = await withKeySigner(values, io, (signer) => createSession(signer, options));
    // One line: credential_process reads the whole of standard output as JSON.
    io.out(`${JSON.stringify(credentials)}\n`);
  },
};
