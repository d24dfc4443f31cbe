/** The flags that name an IAM Roles Anywhere session, for aws-credentials and serve-aws-metadata. */
import type { RolesAnywhereOptions } from '../aws/roles-anywhere.js';
import { KEY_USE_OPTIONS, optional, required, UsageError, type OptionSpec, type Values } from './args.js';
import { readFlagText, readTextInput } from './input-file.js';

/** Those flags, as usage lines show them. */
export const ROLES_ANYWHERE_USAGE = `--key KEYREF --certificate cert.pem [--chain chain.pem]
        --trust-anchor-arn A --profile-arn P --role-arn R [--region R] [--session-duration S]
        [--role-session-name N] [--endpoint URL] [--ca-cert F] [--auth-env VAR] [--pcrs sha256:0,7]`;

export const ROLES_ANYWHERE_OPTIONS = {
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
} as const satisfies OptionSpec;

/** The variable the AWS SDKs read a Roles Anywhere endpoint from. */
const ENDPOINT_ENV = 'AWS_ENDPOINT_URL_ROLESANYWHERE';

/** The RolesAnywhereOptions the flags give (--endpoint, else AWS_ENDPOINT_URL_ROLESANYWHERE), their files read. */
export async function rolesAnywhereOptions(values: Values, env: NodeJS.ProcessEnv): Promise<RolesAnywhereOptions> {
  const durationText = optional(values, 'session-duration');
  const durationSeconds = durationText === undefined ? undefined : Number(durationText);
  if (durationSeconds !== undefined && !Number.isInteger(durationSeconds)) {
    throw new UsageError('--session-duration must be a whole number of seconds');
  }
  const text = (flag: string, what: string) => readFlagText(values, flag, what);
  const certificate = await readTextInput(required(values, 'certificate'), { what: 'certificate' });
  const chain = await text('chain', 'certificate chain');
  const ca = await text('ca-cert', 'CA certificate');
  const region = optional(values, 'region');
  const roleSessionName = optional(values, 'role-session-name');
  // An empty variable is an unset one, as the SDKs read them.
  const endpoint = optional(values, 'endpoint') ?? (env[ENDPOINT_ENV] || undefined);
  return {
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
}
