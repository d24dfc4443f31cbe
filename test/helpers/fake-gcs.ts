/**
 * A loopback stand-in for Cloud Storage's XML API that serves objects only to requests
 * whose signature verifies. Written for the tests from Google's specs (the V4 signing
 * process, V2 signed URLs, V4 POST policies), apart from tpm-jwt and from
 * @google-cloud/storage: it rebuilds the canonical request and the string to sign from
 * the request as it arrives and checks the signature with node:crypto against the
 * service account's public key. A bad, expired or foreign signature gets 403.
 */
import { constants, createHash, randomUUID, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type SigningScheme = 'v4' | 'v2' | 'post-policy' | 'upload-session';

/** How the server answered one request, and why when it refused. */
export interface GcsVerdict {
  method: string;
  path: string;
  scheme?: SigningScheme;
  status: number;
  code?: string;
  message?: string;
}

export interface FakeGcs {
  readonly origin: string;
  /** Stored objects by `bucket/name`. */
  readonly objects: Map<string, Buffer>;
  readonly log: GcsVerdict[];
  /** The server's clock, ms since the epoch: a test moves it to expire what it signed. */
  now: () => number;
  close(): Promise<void>;
}

/** A refusal: the XML error GCS sends, with its status. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
const denied = (code: string, message: string) => new Refusal(403, code, message);
const malformed = (message: string) => new Refusal(400, 'InvalidArgument', message);

const ALGORITHM = 'GOOG4-RSA-SHA256';
const MAX_V4_SECONDS = 7 * 24 * 3600;

/** RFC 3986 percent-encoding of everything but unreserved characters (V4 canonical form). */
const encode = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw malformed(`bad percent-encoding in ${text}`);
  }
}

/** The query as received: decoded name/value pairs, in order, duplicates kept. */
function queryPairs(url: URL): [string, string][] {
  if (url.search.length <= 1) return [];
  return url.search
    .slice(1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? [decode(pair), ''] : [decode(pair.slice(0, eq)), decode(pair.slice(eq + 1))];
    });
}

function single(pairs: [string, string][], name: string): string | undefined {
  const values = pairs.filter(([n]) => n === name);
  if (values.length > 1) throw malformed(`${name} given twice`);
  return values[0]?.[1];
}

/** Header values in canonical form: trimmed, inner whitespace runs as one space. */
const canonicalValue = (value: string | string[] | undefined) =>
  [value ?? ''].flat().join(',').trim().replace(/\s+/g, ' ');

/** The request's Host without its port: what the Node client signs (GCS itself is on 443). */
const hostName = (req: IncomingMessage) => (req.headers.host ?? '').replace(/:\d+$/, '');

function rsaVerifies(key: KeyObject, message: string, signature: Buffer): boolean {
  if (key.asymmetricKeyType !== 'rsa') return false;
  return verify('sha256', Buffer.from(message, 'utf8'), { key, padding: constants.RSA_PKCS1_PADDING }, signature);
}

/** `email/yyyymmdd/location/storage/goog4_request` in its parts; `date` must match. */
function parseCredential(credential: string | undefined, timestamp: string): { email: string; scope: string } {
  const parts = credential?.split('/') ?? [];
  if (parts.length !== 5 || parts[3] !== 'storage' || parts[4] !== 'goog4_request') {
    throw malformed(`bad credential ${credential}`);
  }
  if (parts[1] !== timestamp.slice(0, 8)) throw malformed('the credential date is not the request date');
  return { email: parts[0]!, scope: parts.slice(1).join('/') };
}

/** yyyymmddThhmmssZ as ms since the epoch. */
function parseTimestamp(text: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text ?? '');
  if (!m) throw malformed(`bad X-Goog-Date ${text}`);
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

export async function startFakeGcs(accounts: Record<string, KeyObject>): Promise<FakeGcs> {
  const uploads = new Map<string, string>();
  const fake: FakeGcs = {
    origin: '',
    objects: new Map(),
    log: [],
    now: () => Date.now(),
    close: async () => undefined,
  };

  const keyOf = (email: string) => {
    const key = accounts[email];
    if (!key) throw denied('AccessDenied', `no key for ${email}`);
    return key;
  };

  /** V4 query-string authentication: the canonical request rebuilt from this request. */
  function verifyV4(req: IncomingMessage, url: URL, pairs: [string, string][]): void {
    if (single(pairs, 'X-Goog-Algorithm') !== ALGORITHM) throw malformed('X-Goog-Algorithm must be GOOG4-RSA-SHA256');
    const timestamp = single(pairs, 'X-Goog-Date') ?? '';
    const signedAt = parseTimestamp(timestamp);
    const { email, scope } = parseCredential(single(pairs, 'X-Goog-Credential'), timestamp);
    const expires = Number(single(pairs, 'X-Goog-Expires'));
    if (!Number.isInteger(expires) || expires < 1 || expires > MAX_V4_SECONDS) throw malformed('bad X-Goog-Expires');
    const signedHeaders = (single(pairs, 'X-Goog-SignedHeaders') ?? '').split(';');
    if (!signedHeaders.includes('host')) throw malformed('host must be a signed header');
    if (
      signedHeaders.join(';') !==
      [...signedHeaders]
        .map((h) => h.toLowerCase())
        .sort()
        .join(';')
    ) {
      throw malformed('X-Goog-SignedHeaders must be lower case and sorted');
    }
    const signature = single(pairs, 'X-Goog-Signature') ?? '';
    if (!/^([0-9a-f]{2})+$/i.test(signature)) throw malformed('X-Goog-Signature is not hex');

    const now = fake.now();
    if (now < signedAt) throw denied('AccessDenied', 'the URL is not valid yet');
    if (now > signedAt + expires * 1000) throw denied('ExpiredToken', 'the URL has expired');

    const canonicalHeaders = signedHeaders
      .map((name) => {
        if (name !== 'host' && req.headers[name] === undefined)
          throw denied('AccessDenied', `signed header ${name} missing`);
        return `${name}:${name === 'host' ? hostName(req) : canonicalValue(req.headers[name])}\n`;
      })
      .join('');
    const canonicalQuery = pairs
      .filter(([name]) => name !== 'X-Goog-Signature')
      .map(([name, value]) => [encode(name), encode(value)])
      .sort(([a, x], [b, y]) => (a! < b! ? -1 : a! > b! ? 1 : x! < y! ? -1 : x! > y! ? 1 : 0))
      .map(([name, value]) => `${name}=${value}`)
      .join('&');
    const canonicalPath = url.pathname.split('/').map(decode).map(encode).join('/');
    const payload = signedHeaders.includes('x-goog-content-sha256')
      ? canonicalValue(req.headers['x-goog-content-sha256'])
      : 'UNSIGNED-PAYLOAD';
    const canonicalRequest = [
      req.method,
      canonicalPath,
      canonicalQuery,
      canonicalHeaders,
      signedHeaders.join(';'),
      payload,
    ].join('\n');
    const stringToSign = [
      ALGORITHM,
      timestamp,
      scope,
      createHash('sha256').update(canonicalRequest).digest('hex'),
    ].join('\n');
    if (!rsaVerifies(keyOf(email), stringToSign, Buffer.from(signature, 'hex'))) {
      throw denied('SignatureDoesNotMatch', 'the V4 signature does not match');
    }
  }

  /** V2: METHOD\nContent-MD5\nContent-Type\nExpires\n(x-goog-* headers)Resource, RSA-SHA256. */
  function verifyV2(req: IncomingMessage, url: URL, pairs: [string, string][]): void {
    const email = single(pairs, 'GoogleAccessId') ?? '';
    const expiresText = single(pairs, 'Expires') ?? '';
    if (!/^\d+$/.test(expiresText)) throw malformed('bad Expires');
    const signature = Buffer.from(single(pairs, 'Signature') ?? '', 'base64');
    if (fake.now() > Number(expiresText) * 1000) throw denied('ExpiredToken', 'the URL has expired');
    const extensionHeaders = Object.keys(req.headers)
      .filter((name) => name.startsWith('x-goog-'))
      .sort()
      .map((name) => `${name}:${canonicalValue(req.headers[name])}\n`)
      .join('');
    const stringToSign = [
      req.method,
      canonicalValue(req.headers['content-md5']),
      canonicalValue(req.headers['content-type']),
      expiresText,
      extensionHeaders + url.pathname,
    ].join('\n');
    if (!rsaVerifies(keyOf(email), stringToSign, signature)) {
      throw denied('SignatureDoesNotMatch', 'the V2 signature does not match');
    }
  }

  /** A V4 POST policy form: the signature over the base64 policy, then every condition. */
  async function postPolicy(req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): Promise<void> {
    const form = await new Response(body, { headers: { 'content-type': req.headers['content-type']! } }).formData();
    const fields = new Map<string, string>();
    let file: Blob | undefined;
    for (const [name, value] of form) {
      if (typeof value === 'string') fields.set(name.toLowerCase(), value);
      else if (name === 'file') file = value;
    }
    if (!file) throw malformed('no file in the form');
    if (fields.get('x-goog-algorithm') !== ALGORITHM) throw malformed('x-goog-algorithm must be GOOG4-RSA-SHA256');
    const timestamp = fields.get('x-goog-date') ?? '';
    parseTimestamp(timestamp);
    const { email } = parseCredential(fields.get('x-goog-credential'), timestamp);
    const policyBase64 = fields.get('policy') ?? '';
    const signature = fields.get('x-goog-signature') ?? '';
    if (!/^([0-9a-f]{2})+$/i.test(signature)) throw malformed('x-goog-signature is not hex');
    if (!rsaVerifies(keyOf(email), policyBase64, Buffer.from(signature, 'hex'))) {
      throw denied('SignatureDoesNotMatch', 'the policy signature does not match');
    }

    const policy = JSON.parse(Buffer.from(policyBase64, 'base64').toString('utf8')) as {
      expiration: string;
      conditions: (Record<string, string> | [string, ...unknown[]])[];
    };
    if (!(fake.now() <= Date.parse(policy.expiration))) throw denied('ExpiredToken', 'the policy has expired');
    const pathBucket = url.pathname.split('/')[1] || undefined;
    const bucketCondition = policy.conditions.find((c) => !Array.isArray(c) && 'bucket' in c) as
      Record<string, string> | undefined;
    const bucket = pathBucket ?? bucketCondition?.['bucket'];
    const value = (name: string) => (name === 'bucket' ? bucket : fields.get(name));
    const covered = new Set<string>();
    for (const condition of policy.conditions) {
      const [op, subject, ...args] = Array.isArray(condition)
        ? condition
        : ['eq', `$${Object.keys(condition)[0]}`, Object.values(condition)[0]];
      if (op === 'content-length-range') {
        const [min, max] = [Number(subject), Number(args[0])];
        if (file.size < min || file.size > max) throw denied('EntityTooLarge', 'the file size is out of range');
        continue;
      }
      const name = String(subject).replace(/^\$/, '').toLowerCase();
      covered.add(name);
      const ok =
        op === 'eq' ? value(name) === args[0] : op === 'starts-with' && !!value(name)?.startsWith(String(args[0]));
      if (!ok) throw denied('AccessDenied', `the policy condition on ${name} fails`);
    }
    for (const name of fields.keys()) {
      if (['policy', 'x-goog-signature'].includes(name) || name.startsWith('x-ignore-')) continue;
      if (!covered.has(name)) throw denied('AccessDenied', `form field ${name} is not in the policy`);
    }
    fake.objects.set(`${bucket}/${fields.get('key')}`, Buffer.from(await file.arrayBuffer()));
    res.writeHead(Number(fields.get('success_action_status') ?? 204)).end();
  }

  /** What an authorised request does to the object store. */
  function serveObject(req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): void {
    const [, bucket, ...rest] = url.pathname.split('/');
    const name = `${decode(bucket ?? '')}/${rest.map(decode).join('/')}`;
    const stored = fake.objects.get(name);
    switch (req.method) {
      case 'GET':
      case 'HEAD':
        if (!stored) return void sendError(res, new Refusal(404, 'NoSuchKey', `no ${name}`));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': stored.length });
        return void res.end(req.method === 'GET' ? stored : undefined);
      case 'PUT':
        fake.objects.set(name, body);
        return void res.writeHead(200).end();
      case 'DELETE':
        if (!fake.objects.delete(name)) return void sendError(res, new Refusal(404, 'NoSuchKey', `no ${name}`));
        return void res.writeHead(204).end();
      case 'POST': {
        if (req.headers['x-goog-resumable'] !== 'start') throw malformed('POST to an object starts a resumable upload');
        // The session URI is itself the credential for the upload, as in GCS.
        const id = randomUUID();
        uploads.set(id, name);
        return void res.writeHead(201, { location: `${fake.origin}/upload?upload_id=${id}` }).end();
      }
      default:
        throw malformed(`method ${req.method}`);
    }
  }

  function sendError(res: ServerResponse, error: Refusal): void {
    res.writeHead(error.status, { 'content-type': 'application/xml' });
    res.end(
      `<?xml version='1.0' encoding='UTF-8'?>` +
        `<Error><Code>${error.code}</Code><Message>${error.message}</Message></Error>`,
    );
  }

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const verdict: GcsVerdict = { method: req.method ?? '', path: url.pathname, status: 0 };
    fake.log.push(verdict);
    try {
      const pairs = queryPairs(url);
      if (url.pathname === '/upload' && req.method === 'PUT') {
        verdict.scheme = 'upload-session';
        const name = uploads.get(single(pairs, 'upload_id') ?? '');
        if (!name) throw new Refusal(404, 'NoSuchUpload', 'no such upload session');
        uploads.delete(single(pairs, 'upload_id')!);
        fake.objects.set(name, body);
        res.writeHead(200).end();
      } else if (pairs.some(([name]) => name === 'X-Goog-Signature')) {
        verdict.scheme = 'v4';
        verifyV4(req, url, pairs);
        serveObject(req, url, body, res);
      } else if (pairs.some(([name]) => name === 'Signature')) {
        verdict.scheme = 'v2';
        verifyV2(req, url, pairs);
        serveObject(req, url, body, res);
      } else if (req.method === 'POST' && /^multipart\/form-data/.test(req.headers['content-type'] ?? '')) {
        verdict.scheme = 'post-policy';
        await postPolicy(req, url, body, res);
      } else {
        throw denied('AccessDenied', 'anonymous access is not allowed');
      }
    } catch (err) {
      const refusal = err instanceof Refusal ? err : new Refusal(500, 'InternalError', (err as Error).message);
      Object.assign(verdict, { code: refusal.code, message: refusal.message });
      sendError(res, refusal);
    }
    verdict.status = res.statusCode;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(fake, {
    origin: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
  return fake;
}
