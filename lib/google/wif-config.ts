/**
 * Everything Workload Identity Federation needs for one TPM key: the names Google
 * gives the provider, the credential configuration the auth libraries read (as
 * `gcloud iam workload-identity-pools create-cred-config` writes it: an executable
 * source for a JWKS provider, a certificate source and certificate configuration for an
 * X.509 one, with the trust store it is created from), and the gcloud commands that
 * create the pool, the provider and the grant.
 */
import { parseArgs } from 'node:util';

import { invalidArgument } from '../errors.js';
import { parseKeyRef } from '../tpm/handle.js';
import { iamMethodPath, iamMethodPathPattern } from './iam-credentials.js';
import { DEFAULT_UNIVERSE_DOMAIN } from './token-sources.js';
import { TOKEN_TYPE_JWT } from './wif-subject-token.js';
import { MTLS_STS_TOKEN_URL, TOKEN_TYPE_MTLS, type CertificateKey } from './wif-x509.js';

const STS_TOKEN_URL = 'https://sts.googleapis.com/v1/token';

/** Set to 1 to let credential configurations name any token or impersonation endpoint. */
const ALLOW_ANY_ENDPOINT_ENV = 'TPM_JWT_ALLOW_ANY_ENDPOINT';

/** Google's endpoints a file may name, per kind: the hosts (before .<universe>) and the path. */
const FILE_ENDPOINTS = {
  sts: { hosts: ['sts', 'sts.mtls'], path: /^\/v1\/token$/, shape: '/v1/token' },
  // An X.509 subject token is exchanged only where the TLS client certificate is asked for.
  'sts-mtls': { hosts: ['sts.mtls'], path: /^\/v1\/token$/, shape: '/v1/token' },
  impersonation: {
    hosts: ['iamcredentials', 'iamcredentials.mtls'],
    path: iamMethodPathPattern('generateAccessToken'),
    shape: iamMethodPath('EMAIL', 'generateAccessToken'),
  },
  oauth2: { hosts: ['oauth2'], path: /^\/token$/, shape: '/token' },
} as const satisfies Record<string, { hosts: readonly string[]; path: RegExp; shape: string }>;

/** The variable Google's client libraries read the universe domain from. */
const UNIVERSE_DOMAIN_ENV = 'GOOGLE_CLOUD_UNIVERSE_DOMAIN';

/**
 * A file's universe_domain (default googleapis.com), which must be a DNS name; and one
 * other than googleapis.com only when the environment names the same one in
 * GOOGLE_CLOUD_UNIVERSE_DOMAIN: a file that picks its own universe picks the hosts its
 * tokens go to. Throws ERR_INVALID_ARGUMENT otherwise, unless the user set
 * TPM_JWT_ALLOW_ANY_ENDPOINT=1.
 */
export function checkUniverseDomainFromFile(
  universeDomain: unknown,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (universeDomain === undefined) return DEFAULT_UNIVERSE_DOMAIN;
  if (env[ALLOW_ANY_ENDPOINT_ENV] === '1') return universeDomain as string;
  const label = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
  if (!(typeof universeDomain === 'string' && new RegExp(`^${label}(\\.${label})+$`).test(universeDomain))) {
    throw invalidArgument(`${source}: universe_domain must be a domain name, as googleapis.com`);
  }
  if (universeDomain !== DEFAULT_UNIVERSE_DOMAIN && env[UNIVERSE_DOMAIN_ENV] !== universeDomain) {
    throw invalidArgument(
      `${source}: universe_domain ${universeDomain} is not ${DEFAULT_UNIVERSE_DOMAIN}, and the environment ` +
        `does not name it: set ${UNIVERSE_DOMAIN_ENV}=${universeDomain} to trust that universe ` +
        `(or ${ALLOW_ANY_ENDPOINT_ENV}=1 for files you trust)`,
    );
  }
  return universeDomain;
}

/**
 * `url`, the `field` of a file (`source`, for messages), returned when it is Google's
 * endpoint of that kind for the file's universe domain: https, one of the kind's hosts
 * under `universeDomain`, no port, credentials, query or fragment, the kind's path
 * (sts: https://sts.UD/v1/token or https://sts.mtls.UD/v1/token; impersonation:
 * https://iamcredentials[.mtls].UD/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken;
 * oauth2: https://oauth2.UD/token). Returned unchecked when the user set
 * TPM_JWT_ALLOW_ANY_ENDPOINT=1. Throws ERR_INVALID_ARGUMENT otherwise: what goes there
 * is a fresh TPM-signed token or a federated access token. Endpoints the user passes
 * (an option, a flag) are not checked.
 */
export function checkEndpointFromFile(
  url: unknown,
  field: string,
  kind: keyof typeof FILE_ENDPOINTS,
  universeDomain: string,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (env[ALLOW_ANY_ENDPOINT_ENV] === '1') return url as string;
  const { hosts, path, shape } = FILE_ENDPOINTS[kind];
  const allowed = hosts.map((host) => `https://${host}.${universeDomain}${shape}`).join(' or ');
  const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : undefined;
  if (
    !parsed ||
    parsed.protocol !== 'https:' ||
    parsed.username !== '' ||
    parsed.password !== '' ||
    parsed.port !== '' ||
    parsed.search !== '' ||
    parsed.hash !== '' ||
    !hosts.some((host) => parsed.hostname === `${host}.${universeDomain}`) ||
    !path.test(parsed.pathname)
  ) {
    throw invalidArgument(
      `${source}: ${field} ${JSON.stringify(url)} is not Google's endpoint for universe ${universeDomain} ` +
        `(${allowed}); set ${ALLOW_ANY_ENDPOINT_ENV}=1 to let files you trust name any endpoint`,
    );
  }
  return url as string;
}

interface WifProvider {
  projectNumber: string;
  pool: string;
  provider: string;
  /** A JWKS (OIDC) provider's: the issuer URI of the subject tokens. An X.509 provider has none. */
  issuer?: string;
}

/** Pool and provider IDs: 4 to 32 lowercase letters, digits and hyphens; not gcp-. */
const ID = /^[a-z0-9-]{4,32}$/;

/** Throws ERR_INVALID_ARGUMENT for IDs Google would refuse. */
export function checkProvider(provider: WifProvider): void {
  if (!/^[0-9]{1,20}$/.test(provider.projectNumber)) throw invalidArgument('the project number is digits only');
  for (const [what, id] of [
    ['pool', provider.pool],
    ['provider', provider.provider],
  ] as const) {
    if (!ID.test(id) || id.startsWith('gcp-')) {
      throw invalidArgument(`${what} ID ${id}: 4 to 32 lowercase letters, digits and hyphens, not starting with gcp-`);
    }
  }
  if (provider.issuer !== undefined && !/^https:\/\/[^\s]+$/.test(provider.issuer)) {
    throw invalidArgument('the issuer must be an https:// URI');
  }
}

/** projects/N/locations/global/workloadIdentityPools/P, the pool's resource name. */
function poolName(p: WifProvider): string {
  return `projects/${p.projectNumber}/locations/global/workloadIdentityPools/${p.pool}`;
}

/** The audience a credential configuration names for the provider. */
export function stsAudience(p: WifProvider): string {
  return `//iam.googleapis.com/${poolName(p)}/providers/${p.provider}`;
}

/** The IAM principal of one subject in the pool. */
function principal(p: WifProvider, subject: string): string {
  return `principal://iam.googleapis.com/${poolName(p)}/subject/${subject}`;
}

/** What `tpm-jwt wif-token` is run with; the command line and tpm-jwt/google both read it. */
export interface WifTokenArgs {
  /** A KEYREF; or instead `credentials`, a tpm_service_account descriptor. */
  key?: string;
  credentials?: string;
  issuer: string;
  subject?: string;
  tcti?: string;
  kid?: string;
  authEnv?: string;
  pcrs?: string;
  lifetime?: number;
  /** The subject token's aud, instead of https: + the provider audience. */
  audience?: string;
  /** False with --no-encrypt. */
  encrypt?: boolean;
}

/** Every flag wif-token takes, as the credential configuration may give them. */
const WIF_TOKEN_FLAGS = {
  key: { type: 'string' },
  credentials: { type: 'string' },
  issuer: { type: 'string' },
  subject: { type: 'string' },
  tcti: { type: 'string' },
  kid: { type: 'string' },
  'auth-env': { type: 'string' },
  pcrs: { type: 'string' },
  lifetime: { type: 'string' },
  audience: { type: 'string' },
  'no-encrypt': { type: 'boolean' },
} as const;
type WifTokenFlagValues = {
  [K in keyof typeof WIF_TOKEN_FLAGS]?: (typeof WIF_TOKEN_FLAGS)[K]['type'] extends 'boolean' ? boolean : string;
};

/**
 * `<executable...> wif-token --key K --issuer I [--subject S] [--tcti T] [--no-encrypt]`, as a list:
 * the command carries the TPM link's settings the user chose, encryption off included.
 */
export function wifTokenCommand(executable: readonly string[], args: WifTokenArgs): string[] {
  return [
    ...executable,
    'wif-token',
    ...(args.key !== undefined ? ['--key', args.key] : []),
    ...(args.credentials !== undefined ? ['--credentials', args.credentials] : []),
    '--issuer',
    args.issuer,
    ...(args.subject !== undefined ? ['--subject', args.subject] : []),
    ...(args.tcti !== undefined ? ['--tcti', args.tcti] : []),
    ...(args.encrypt === false ? ['--no-encrypt'] : []),
  ];
}

/**
 * The wif-token arguments in a credential configuration's command (split on
 * whitespace, as the auth libraries split it), every flag wif-token takes, so signing
 * in-process signs what the subprocess would. Throws ERR_INVALID_ARGUMENT when the
 * command does not run wif-token with --issuer and one of --key or --credentials, or
 * has a flag wif-token does not.
 */
export function parseWifTokenCommand(command: string): WifTokenArgs {
  const words = command.trim().split(/\s+/);
  const at = words.indexOf('wif-token');
  if (at === -1) throw invalidArgument('the credential configuration does not run tpm-jwt wif-token');
  let values: WifTokenFlagValues;
  try {
    ({ values } = parseArgs({ args: words.slice(at + 1), options: WIF_TOKEN_FLAGS, strict: true }));
  } catch (err) {
    throw invalidArgument(`cannot read the wif-token arguments: ${(err as Error).message}`);
  }
  const { key, credentials, issuer, lifetime } = values;
  if (issuer === undefined || (key === undefined) === (credentials === undefined)) {
    throw invalidArgument('wif-token needs --issuer and one of --key or --credentials');
  }
  if (lifetime !== undefined && !/^[0-9]+$/.test(lifetime)) throw invalidArgument('--lifetime must be seconds');
  const optional = {
    key,
    credentials,
    subject: values.subject,
    tcti: values.tcti,
    kid: values.kid,
    authEnv: values['auth-env'],
    pcrs: values.pcrs,
    lifetime: lifetime === undefined ? undefined : Number(lifetime),
    audience: values.audience,
    encrypt: values['no-encrypt'] === true ? false : undefined,
  };
  return {
    issuer,
    ...Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined)),
  } as WifTokenArgs;
}

interface CredentialConfigurationOptions {
  /** The executable and its arguments; the libraries split on whitespace, so none may hold any. */
  command: readonly string[];
  /** Where the libraries cache the response: one file per key and audience. */
  outputFile: string;
  serviceAccount?: string;
  tokenUrl?: string;
  timeoutMillis?: number;
}

/** What every credential configuration for the provider starts with: audience, token type, STS, impersonation. */
function configurationHead(
  p: WifProvider,
  subjectTokenType: string,
  tokenUrl: string,
  serviceAccount: string | undefined,
): object {
  return {
    type: 'external_account',
    audience: stsAudience(p),
    subject_token_type: subjectTokenType,
    token_url: tokenUrl,
    ...(serviceAccount !== undefined && {
      service_account_impersonation_url:
        'https://iamcredentials.googleapis.com' + iamMethodPath(serviceAccount, 'generateAccessToken'),
    }),
  };
}

/** The credential configuration (GOOGLE_APPLICATION_CREDENTIALS) for an executable source. */
export function credentialConfiguration(p: WifProvider, options: CredentialConfigurationOptions): object {
  const spaced = [...options.command, options.outputFile].find((part) => /\s/.test(part) || part === '');
  if (spaced !== undefined) {
    throw invalidArgument(`'${spaced}' holds whitespace: the auth libraries split the command on it`);
  }
  return {
    ...configurationHead(p, TOKEN_TYPE_JWT, options.tokenUrl ?? STS_TOKEN_URL, options.serviceAccount),
    credential_source: {
      executable: {
        command: options.command.join(' '),
        timeout_millis: options.timeoutMillis ?? 30_000,
        output_file: options.outputFile,
      },
    },
  };
}

/**
 * The credential configuration for an X.509 provider: a certificate source naming the
 * certificate configuration and the chain sent after the certificate, exchanged at the
 * mTLS STS.
 */
export function x509CredentialConfiguration(
  p: WifProvider,
  options: { certificateConfig: string; trustChain?: string; serviceAccount?: string; tokenUrl?: string },
): object {
  return {
    ...configurationHead(p, TOKEN_TYPE_MTLS, options.tokenUrl ?? MTLS_STS_TOKEN_URL, options.serviceAccount),
    credential_source: {
      certificate: {
        certificate_config_location: options.certificateConfig,
        ...(options.trustChain !== undefined && { trust_chain_path: options.trustChain }),
      },
    },
  };
}

/**
 * The certificate configuration: Google's cert_configs.workload, its key_path the TPM
 * key file when the key is one, and the key as tpm-jwt reads it in `tpm` (a handle and
 * TCTI have no place in Google's format, and Google's libraries ignore the field).
 */
export function certificateConfiguration(certPath: string, key: CertificateKey): object {
  const isFile = 'path' in parseKeyRef(key.key ?? '');
  return { cert_configs: { workload: { cert_path: certPath, ...(isFile && { key_path: key.key }), tpm: key } } };
}

/**
 * The trust store an X.509 provider is created from (providers create-x509
 * --trust-store-config-path): YAML, each PEM certificate a double-quoted (JSON) string.
 */
export function trustStoreYaml(anchors: readonly string[], intermediates: readonly string[]): string {
  const list = (name: string, pems: readonly string[]) =>
    pems.length === 0
      ? ''
      : `  ${name}:\n${pems.map((pem) => `  - pemCertificate: ${JSON.stringify(pem)}\n`).join('')}`;
  return `trustStore:\n${list('trustAnchors', anchors)}${list('intermediateCas', intermediates)}`;
}

/** How the provider is created: from the key's JWKS (OIDC), or from a trust store (X.509). */
type ProviderSource = { jwksPath: string } | { trustStorePath: string };

/** The gcloud commands that set the provider up for `subject` and grant it access. */
export function gcloudCommands(
  p: WifProvider,
  setup: ProviderSource & { subject: string; serviceAccount?: string },
): string[] {
  const location = `--project=${p.projectNumber} --location=global`;
  const member = principal(p, setup.subject);
  const provider =
    'jwksPath' in setup
      ? `create-oidc ${p.provider} ${location} --workload-identity-pool=${p.pool} --issuer-uri=${p.issuer}` +
        ` --jwk-json-path=${setup.jwksPath} --attribute-mapping=google.subject=assertion.sub`
      : `create-x509 ${p.provider} ${location} --workload-identity-pool=${p.pool}` +
        ` --trust-store-config-path=${setup.trustStorePath} --attribute-mapping=google.subject=assertion.subject.dn.cn`;
  return [
    `gcloud iam workload-identity-pools create ${p.pool} ${location} --display-name="TPM devices"`,
    `gcloud iam workload-identity-pools providers ${provider}`,
    setup.serviceAccount === undefined
      ? `# grant ${member} roles on the resources it uses, for example:\n` +
        `gcloud projects add-iam-policy-binding PROJECT_ID --member=${member} --role=roles/storage.objectViewer`
      : `gcloud iam service-accounts add-iam-policy-binding ${setup.serviceAccount}` +
        ` --member=${member} --role=roles/iam.workloadIdentityUser`,
  ];
}
