/**
 * AWS IAM Roles Anywhere with the TPM key: CreateSession signed with SigV4-X509
 * (AWS4-X509-RSA-SHA256 or AWS4-X509-ECDSA-SHA256), as AWS's credential helper signs it,
 * answered with temporary AWS credentials. The certificate is the key's, issued under the
 * trust anchor's CA (or the anchor itself); nothing secret is stored on the device.
 *
 * The canonical request: `POST`, `/sessions`, the query (profileArn, roleArn,
 * trustAnchorArn, sorted and encoded as Go's url.Values.Encode with `%20` for spaces),
 * every header sent but Authorization and User-Agent as `name:value` lines sorted by name,
 * the signed header names, and the hex SHA-256 of the body. The string to sign is the
 * algorithm, the X-Amz-Date, the scope `YYYYMMDD/REGION/rolesanywhere/aws4_request` and
 * the hex SHA-256 of the canonical request; the signature (PKCS#1 v1.5, or DER ECDSA) is
 * hex in the Authorization header, whose credential is the certificate's decimal serial.
 */
import { createHash, X509Certificate } from 'node:crypto';

import { parseCertificates } from '../attest/certificates.js';
import { signerPublicKey, type Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { postForJson } from '../post.js';
import { ecdsaDer } from '../tpm/x509.js';

export interface RolesAnywhereOptions {
  /** The key's certificate (PEM), issued under the trust anchor. */
  certificate: string;
  /** Intermediate CA certificates (PEM), sent as X-Amz-X509-Chain. */
  chain?: string;
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
  /** Default: the trust anchor ARN's region. */
  region?: string;
  /** Seconds the credentials last, 900 to 43200; default 3600. */
  durationSeconds?: number;
  roleSessionName?: string;
  /** Default https://rolesanywhere.REGION.amazonaws.com. */
  endpoint?: string;
  /** PEM CA certificates to trust for the endpoint instead of the system's. */
  ca?: string;
}

/** Temporary AWS credentials, in credential_process's names. */
export interface AwsProcessCredentials {
  Version: 1;
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken: string;
  /** ISO 8601. */
  Expiration: string;
}

const ARN = /^arn:aws[a-z-]*:(rolesanywhere|iam):([a-z0-9-]*):\d{12}:[A-Za-z0-9+=,.@_/-]+$/;

/** Encoded as Go's url.QueryEscape: what AWS's helper signs. */
const queryEscape = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const sha256Hex = (data: string) => createHash('sha256').update(data).digest('hex');

interface Prepared {
  url: URL;
  region: string;
  leaf: X509Certificate;
  chain: X509Certificate[];
  body: string;
}

function prepare(signer: Signer, options: RolesAnywhereOptions): Prepared {
  for (const name of ['trustAnchorArn', 'profileArn', 'roleArn'] as const) {
    if (typeof options?.[name] !== 'string' || !ARN.test(options[name])) throw invalidArgument(`${name} is not an ARN`);
  }
  if (signer.algorithm !== 'RS256' && signer.algorithm !== 'ES256') {
    throw invalidArgument(`Roles Anywhere signs with RSA PKCS#1 v1.5 or ECDSA P-256, not ${signer.algorithm}`);
  }
  const certificates = (text: string | undefined, what: string) => {
    if (text === undefined) return [];
    const parsed = parseCertificates(text, what);
    if (parsed.length === 0) throw invalidArgument(`${what} holds no PEM certificate`);
    return parsed;
  };
  const [leaf] = certificates(options.certificate ?? '', 'certificate');
  if (!leaf) throw invalidArgument('certificate must be a PEM certificate');
  const publicKey = signerPublicKey(signer);
  if (publicKey && !leaf.publicKey.equals(publicKey)) {
    throw invalidArgument('certificate is not for the signing key: Roles Anywhere would refuse every request');
  }
  const region = options.region ?? options.trustAnchorArn.split(':')[3]!;
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) throw invalidArgument(`region ${region} is not an AWS region`);
  const duration = options.durationSeconds ?? 3600;
  if (!Number.isInteger(duration) || duration < 900 || duration > 43200) {
    throw invalidArgument('durationSeconds must be 900 to 43200');
  }
  const endpoint = options.endpoint ?? `https://rolesanywhere.${region}.amazonaws.com`;
  let url: URL;
  try {
    url = new URL('/sessions', endpoint);
  } catch {
    throw invalidArgument(`endpoint ${endpoint} is not a URL`);
  }
  if (url.protocol !== 'https:') throw invalidArgument('endpoint must be https');
  const query = (['profileArn', 'roleArn', 'trustAnchorArn'] as const)
    .map((name) => `${name}=${queryEscape(options[name])}`)
    .join('&');
  url.search = query;
  const body = JSON.stringify({
    durationSeconds: duration,
    ...(options.roleSessionName !== undefined && { roleSessionName: options.roleSessionName }),
  });
  return { url, region, leaf, chain: certificates(options.chain, 'chain'), body };
}

/** The request's headers, Authorization included: SigV4-X509 over everything else sent. */
async function signedHeaders(signer: Signer, prepared: Prepared, now: Date): Promise<Record<string, string>> {
  const { url, region, leaf, chain, body } = prepared;
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-x509': leaf.raw.toString('base64'),
    ...(chain.length > 0 && { 'x-amz-x509-chain': chain.map((c) => c.raw.toString('base64')).join(',') }),
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    'POST',
    '/sessions',
    url.search.slice(1),
    ...names.map((name) => `${name}:${headers[name]}`),
    '',
    names.join(';'),
    sha256Hex(body),
  ].join('\n');
  const algorithm = signer.algorithm === 'ES256' ? 'AWS4-X509-ECDSA-SHA256' : 'AWS4-X509-RSA-SHA256';
  const scope = `${amzDate.slice(0, 8)}/${region}/rolesanywhere/aws4_request`;
  const stringToSign = [algorithm, amzDate, scope, sha256Hex(canonical)].join('\n');
  const raw = await signer.sign(Buffer.from(stringToSign));
  const signature = Buffer.from(signer.algorithm === 'ES256' ? new Uint8Array(ecdsaDer(raw)) : raw).toString('hex');
  const serial = BigInt(`0x${leaf.serialNumber}`).toString(10);
  headers['authorization'] =
    `${algorithm} Credential=${serial}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return headers;
}

/**
 * Calls Roles Anywhere's CreateSession, signed by `signer` (the key of `certificate`), and
 * returns the credentials as credential_process prints them. ERR_INVALID_ARGUMENT for bad
 * options (before signing), ERR_TOKEN_EXCHANGE with AWS's message when it refuses.
 */
export async function createSession(signer: Signer, options: RolesAnywhereOptions): Promise<AwsProcessCredentials> {
  return sessionMaker(signer, options)();
}

/**
 * CreateSession calls for `signer` and `options`: the options checked and the request
 * prepared once (ERR_INVALID_ARGUMENT at once), each call signed anew.
 */
export function sessionMaker(signer: Signer, options: RolesAnywhereOptions): () => Promise<AwsProcessCredentials> {
  const prepared = prepare(signer, options);
  return () => session(signer, prepared, options.ca);
}

async function session(signer: Signer, prepared: Prepared, ca: string | undefined): Promise<AwsProcessCredentials> {
  const headers = await signedHeaders(signer, prepared, new Date());
  const reply = await postForJson(prepared.url, prepared.body, { headers, ca }, 'Roles Anywhere');
  const answer = (reply.json ?? {}) as {
    credentialSet?: { credentials?: Record<string, unknown> }[];
    message?: string;
  };
  const credentials = answer.credentialSet?.[0]?.credentials;
  const { accessKeyId, secretAccessKey, sessionToken, expiration } = (credentials ?? {}) as Record<string, string>;
  if (reply.status !== 201 && reply.status !== 200) {
    throw new TpmJwtError(
      'ERR_TOKEN_EXCHANGE',
      `Roles Anywhere refused CreateSession (HTTP ${reply.status}): ${answer.message ?? reply.text.slice(0, 300)}`,
    );
  }
  if (
    ![accessKeyId, secretAccessKey, sessionToken, expiration].every((v) => typeof v === 'string' && v !== '') ||
    Number.isNaN(Date.parse(expiration!))
  ) {
    throw new TpmJwtError('ERR_TOKEN_EXCHANGE', 'Roles Anywhere answered CreateSession without credentials');
  }
  return {
    Version: 1,
    AccessKeyId: accessKeyId!,
    SecretAccessKey: secretAccessKey!,
    SessionToken: sessionToken!,
    Expiration: new Date(expiration!).toISOString(),
  };
}

/**
 * An `@aws-sdk` credentials provider (`new S3Client({ credentials })`): each call is one
 * CreateSession; the SDK keeps the credentials until they near their expiration.
 */
export function rolesAnywhereCredentials(signer: Signer, options: RolesAnywhereOptions) {
  const next = sessionMaker(signer, options);
  return async () => {
    const c = await next();
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(c.Expiration),
    };
  };
}
