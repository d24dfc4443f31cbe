/**
 * An IMDSv2-compatible endpoint for the AWS SDKs that take their credentials only from
 * instance metadata (as AWS's credential helper's `serve` offers): `PUT /latest/api/token`
 * hands out a session token for its TTL, and with that token
 * `GET /latest/meta-data/iam/security-credentials/` names the role and `.../ROLE` answers
 * the Roles Anywhere credentials, kept and refreshed ahead of their expiration, so the TPM
 * signs once per session, not per request. Loopback only; requests that came through a
 * proxy (X-Forwarded-For) are refused, as IMDS refuses them, and so are those whose Host
 * is not this server's (a page that rebound its own name to 127.0.0.1).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { TokenCache } from '../jwt/token-cache.js';
import { cameThroughProxy, isLoopback } from '../loopback.js';
import { sessionMaker, type AwsProcessCredentials, type RolesAnywhereOptions } from './roles-anywhere.js';

export interface AwsMetadataServerOptions {
  /** A loopback address; default 127.0.0.1. */
  host?: string;
  /** Default 9911, the credential helper's; 0 for any free port. */
  port?: number;
}

export interface AwsMetadataServer {
  /** http://HOST:PORT: what AWS_EC2_METADATA_SERVICE_ENDPOINT names. */
  readonly url: string;
  close(): Promise<void>;
}

/** Session tokens kept at most: a client asking for more only makes the oldest ones expire early. */
const MAX_SESSION_TOKENS = 1024;
const CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/';

export async function startAwsMetadataServer(
  signer: Signer,
  options: RolesAnywhereOptions,
  server: AwsMetadataServerOptions = {},
): Promise<AwsMetadataServer> {
  const host = server.host ?? '127.0.0.1';
  if (!isLoopback(host))
    throw invalidArgument(`${host} is not loopback: every machine that reaches it would get the credentials`);
  const role = options.roleArn.slice(options.roleArn.lastIndexOf('/') + 1);
  if (role === '') throw invalidArgument('roleArn names no role');
  // The options checked now, before listening; one key: the credentials, as JSON, until their expiration.
  const nextSession = sessionMaker(signer, options);
  const credentials = new TokenCache(
    async () => {
      const c = await nextSession();
      return { token: JSON.stringify(c), expiry: new Date(c.Expiration) };
    },
    { maxSize: 1, refreshAhead: true },
  );
  const sessions = new Map<string, number>();

  const answer = (res: ServerResponse, status: number, body: string, type = 'text/plain') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  // The Host names this server answers to: its address or localhost, with its port. A page
  // whose own name a rebinding DNS points at 127.0.0.1 sends that name, and is refused.
  const hosts = new Set<string>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (cameThroughProxy(req.headers)) return answer(res, 403, 'Forbidden\n');
    if (!hosts.has(String(req.headers.host ?? '').toLowerCase())) return answer(res, 403, 'Forbidden\n');
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return answer(res, 405, 'Method Not Allowed\n');
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return answer(res, 400, 'Bad Request\n');
      const token = randomBytes(32).toString('base64url');
      sessions.set(token, Date.now() + ttl * 1000);
      if (sessions.size > MAX_SESSION_TOKENS) sessions.delete(sessions.keys().next().value!);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return answer(res, 200, token);
    }
    if (req.method !== 'GET') return answer(res, 405, 'Method Not Allowed\n');
    const token = String(req.headers['x-aws-ec2-metadata-token'] ?? '');
    const until = sessions.get(token);
    if (until === undefined || until < Date.now()) {
      sessions.delete(token);
      return answer(res, 401, 'Unauthorized\n');
    }
    if (path === CREDENTIALS_PATH || path === CREDENTIALS_PATH.slice(0, -1)) return answer(res, 200, role);
    if (path !== `${CREDENTIALS_PATH}${role}`) return answer(res, 404, 'Not Found\n');
    let current: AwsProcessCredentials;
    try {
      current = JSON.parse((await credentials.get('credentials')).token) as AwsProcessCredentials;
    } catch (err) {
      const body = { Code: 'Failure', Message: (err as Error).message, LastUpdated: new Date().toISOString() };
      return answer(res, 500, JSON.stringify(body), 'application/json');
    }
    const body = {
      Code: 'Success',
      LastUpdated: new Date().toISOString(),
      Type: 'AWS-HMAC',
      AccessKeyId: current.AccessKeyId,
      SecretAccessKey: current.SecretAccessKey,
      Token: current.SessionToken,
      Expiration: current.Expiration,
    };
    answer(res, 200, JSON.stringify(body), 'application/json');
  }

  const http = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(server.port ?? 9911, host, () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  const literal = host.includes(':') ? `[${host}]` : host;
  for (const name of [literal, 'localhost']) hosts.add(`${name.toLowerCase()}:${port}`);
  return {
    url: `http://${literal}:${port}`,
    close: () =>
      new Promise((resolve) => {
        http.close(() => resolve());
        // SDK clients keep their connections alive: close() would wait for them.
        http.closeAllConnections();
      }),
  };
}
