/**
 * A loopback stand-in for AWS IAM Roles Anywhere's CreateSession (`POST /sessions`), over
 * HTTPS, that checks a request as AWS describes SigV4-X509 signing ("Signing process for
 * IAM Roles Anywhere"): the Authorization header's algorithm, credential (the certificate's
 * decimal serial and the scope DATE/REGION/rolesanywhere/aws4_request), signed headers and
 * signature; the canonical request rebuilt from what arrived (method, path, the sorted and
 * encoded query, each signed header, the body's SHA-256); the signature verified with the
 * X-Amz-X509 certificate's key (PKCS#1 v1.5 SHA-256, or DER ECDSA); X-Amz-Date within five
 * minutes; the certificate chaining (through X-Amz-X509-Chain) to the trust anchor the
 * query names; the profile and role known; durationSeconds 900 to 43200.
 */
import { createHash, randomBytes, verify, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { loopbackTls } from './loopback-tls.js';

export interface FakeRolesAnywhere {
  readonly endpoint: string;
  readonly ca: string;
  readonly region: string;
  /** Trust anchor ARN → its CA certificate (PEM). */
  readonly anchors: Map<string, string>;
  readonly profiles: Set<string>;
  readonly roles: Set<string>;
  /** Each CreateSession: the credentials issued, or why it was refused. */
  readonly sessions: { accessKeyId?: string; refused?: string }[];
  close(): Promise<void>;
}

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
/** RFC 3986 unreserved characters stay, everything else is %XX: Go's QueryEscape, with %20 for spaces. */
const escape = (text: string) =>
  [...Buffer.from(text)]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');

/** ALGORITHM Credential=SERIAL/DATE/REGION/rolesanywhere/aws4_request, SignedHeaders=..., Signature=HEX */
const AUTHORIZATION = new RegExp(
  '^(AWS4-X509-(?:RSA|ECDSA)-SHA256) Credential=(\\d+)/(\\d{8})/([a-z0-9-]+)/rolesanywhere/aws4_request, ' +
    'SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]+)$',
);

export async function startFakeRolesAnywhere(dir: string, region = 'eu-west-1'): Promise<FakeRolesAnywhere> {
  const tls = loopbackTls(dir, 'rolesanywhere');
  const anchors = new Map<string, string>();
  const profiles = new Set<string>();
  const roles = new Set<string>();
  const sessions: FakeRolesAnywhere['sessions'] = [];

  function chainsTo(leaf: X509Certificate, chain: X509Certificate[], anchor: X509Certificate): boolean {
    let certificate = leaf;
    for (let depth = 0; depth <= chain.length; depth++) {
      if (certificate.checkIssued(anchor) && certificate.verify(anchor.publicKey)) return true;
      const issuer = chain.find((c) => certificate.checkIssued(c) && certificate.verify(c.publicKey));
      if (!issuer) return false;
      certificate = issuer;
    }
    return false;
  }

  function refusal(url: URL, headers: Record<string, string | string[] | undefined>, body: string): string | undefined {
    const authorization = AUTHORIZATION.exec(String(headers['authorization'] ?? ''));
    if (!authorization) return 'Authorization header is not SigV4-X509';
    const [, algorithm, serial, date, scopeRegion, signedNames, signature] = authorization;
    if (scopeRegion !== region) return `scope region ${scopeRegion} is not ${region}`;
    const amzDate = String(headers['x-amz-date'] ?? '');
    const signedAt = Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (!(Math.abs(Date.now() - signedAt) < 5 * 60_000) || amzDate.slice(0, 8) !== date) return 'X-Amz-Date is not now';
    let leaf: X509Certificate;
    let chain: X509Certificate[];
    try {
      leaf = new X509Certificate(Buffer.from(String(headers['x-amz-x509']), 'base64'));
      const chainHeader = headers['x-amz-x509-chain'];
      chain = chainHeader
        ? String(chainHeader)
            .split(',')
            .map((c) => new X509Certificate(Buffer.from(c, 'base64')))
        : [];
    } catch {
      return 'X-Amz-X509 is not a certificate';
    }
    if (BigInt(`0x${leaf.serialNumber}`).toString(10) !== serial) return 'the credential is not the certificate serial';
    if (algorithm!.includes('ECDSA') !== (leaf.publicKey.asymmetricKeyType === 'ec'))
      return 'algorithm does not fit the key';
    const names = signedNames!.split(';');
    for (const required of ['host', 'x-amz-date', 'x-amz-x509'])
      if (!names.includes(required)) return `${required} is not signed`;
    const query = [...url.searchParams.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${escape(k)}=${escape(v)}`)
      .join('&');
    const canonical = [
      'POST',
      '/sessions',
      query,
      ...names.map(
        (name) =>
          `${name}:${String(headers[name] ?? '')
            .trim()
            .replace(/ +/g, ' ')}`,
      ),
      '',
      names.join(';'),
      sha256Hex(body),
    ].join('\n');
    const stringToSign = [
      algorithm,
      amzDate,
      `${date}/${region}/rolesanywhere/aws4_request`,
      sha256Hex(canonical),
    ].join('\n');
    if (!verify('sha256', Buffer.from(stringToSign), leaf.publicKey, Buffer.from(signature!, 'hex'))) {
      return 'the signature does not verify';
    }
    const anchor = anchors.get(url.searchParams.get('trustAnchorArn') ?? '');
    if (!anchor) return 'unknown trust anchor';
    if (!chainsTo(leaf, chain, new X509Certificate(anchor)))
      return 'the certificate does not chain to the trust anchor';
    if (!profiles.has(url.searchParams.get('profileArn') ?? '')) return 'unknown profile';
    if (!roles.has(url.searchParams.get('roleArn') ?? '')) return 'unknown role';
    const { durationSeconds } = JSON.parse(body) as { durationSeconds?: number };
    if (durationSeconds !== undefined && !(durationSeconds >= 900 && durationSeconds <= 43200)) {
      return 'durationSeconds out of range';
    }
    return undefined;
  }

  const server: Server = createServer(tls, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://stand-in');
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const refused =
        req.method === 'POST' && url.pathname === '/sessions' ? refusal(url, req.headers, body) : 'not found';
      if (refused !== undefined) {
        sessions.push({ refused });
        res.writeHead(403, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ message: refused }));
      }
      const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
      sessions.push({ accessKeyId });
      const duration = (JSON.parse(body) as { durationSeconds?: number }).durationSeconds ?? 3600;
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          credentialSet: [
            {
              credentials: {
                accessKeyId,
                secretAccessKey: randomBytes(20).toString('base64'),
                sessionToken: randomBytes(32).toString('base64'),
                expiration: new Date(Date.now() + duration * 1000).toISOString(),
              },
              roleArn: url.searchParams.get('roleArn'),
              packedPolicySize: 0,
            },
          ],
          subjectArn: 'arn:aws:rolesanywhere:eu-west-1:111122223333:subject/s',
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: tls.cert,
    region,
    anchors,
    profiles,
    roles,
    sessions,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
