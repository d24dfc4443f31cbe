/**
 * One metadata request, from admission to answer: refuse what guard.ts refuses, find
 * the path in the tree, render it as GCE does, mint for token and identity. Whatever a
 * request holds, the answer is a status and a body: a bad request never throws out of
 * here, and no answer but a 200 for a minted leaf carries a token.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

import { TpmJwtError } from '../errors.js';
import type { ExpiringToken } from '../jwt/token-cache.js';
import { refusal } from './guard.js';
import { lookup, pathIndex, render, type Directory, type Node } from './tree.js';
import type { MetadataTokens } from './tokens.js';

export interface HandlerContext {
  readonly tree: Directory;
  readonly tokens: MetadataTokens;
  readonly hosts: ReadonlySet<string>;
  /** The scopes of a token request that names none. */
  readonly scopes: readonly string[];
  /** The Retry-After of a 429 for a new scope set or audience past the rate (absent: none). */
  readonly retryAfterSeconds?: number | undefined;
  /** Runs before any token is served; throws when the key may no longer sign. */
  readonly beforeMint?: (() => Promise<void>) | undefined;
  /** True once the server is draining: answers then close their connection. */
  readonly closing: () => boolean;
  readonly log: (entry: RequestLog) => void;
}

/** What is logged of a request: never a token, never a header value. */
export interface RequestLog {
  method: string;
  path: string;
  status: number;
  /** How long the answer waited (a signing, a check, a token server), to 0.1 ms: 0 when answered at once. */
  ms: number;
  code?: string;
  /** Why a request failed on the server's side (5xx): a TPM or token-server message, never a token. */
  error?: string;
}

interface Answer {
  status: number;
  type: 'text' | 'json';
  body: string;
  /** The headers, when made ahead (a cached token's answer); else made from the fields above. */
  headers?: OutgoingHttpHeaders;
  code?: string;
  error?: string;
  retryAfter?: number | undefined;
}

const BASE = '/computeMetadata/v1';
const MAX_PARAMETER = 2048;
/** How a URL without a query is rendered (URLSearchParams.get is not free at every request). */
const PLAIN = { recursive: false, json: false };
const ignore = () => {};

/**
 * Answers `req` on `res`, at once when nothing needs waiting for (a cached token, any
 * refusal, any metadata value): then it returns undefined. Otherwise it returns a
 * Promise that settles when the answer is written, and never rejects.
 */
export function handle(context: HandlerContext, req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
  const url = req.url ?? '/';
  const at = url.indexOf('?');
  const path = at === -1 ? url : url.slice(0, at);
  const query = at === -1 ? undefined : new URLSearchParams(url.slice(at + 1));
  let answer: Answer | Promise<Answer>;
  try {
    answer = answerFor(context, req, path, query);
  } catch (err) {
    answer = failure(err);
  }
  // An answer made at once waited for nothing: its log says 0 ms without reading a clock.
  if (!(answer instanceof Promise)) return respond(context, req, res, path, 0, answer);
  const started = performance.now();
  // The client may go away while the answer is made: what its streams then report is not thrown.
  req.on('error', ignore);
  res.on('error', ignore);
  return answer
    .then(undefined, failure)
    .then((later) => respond(context, req, res, path, Math.round((performance.now() - started) * 10) / 10, later));
}

function respond(
  context: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  ms: number,
  answer: Answer,
): undefined {
  const headers = answer.headers ?? answerHeaders(answer);
  res.writeHead(answer.status, context.closing() ? { ...headers, connection: 'close' } : headers);
  res.end(answer.body);
  const entry: RequestLog = {
    method: req.method ?? '',
    path: path.length > 256 ? path.slice(0, 256) : path,
    status: answer.status,
    ms,
  };
  if (answer.code !== undefined) entry.code = answer.code;
  if (answer.error !== undefined) entry.error = answer.error;
  try {
    context.log(entry);
  } catch {
    // A log sink that fails (stderr closed) must not take requests down with it.
  }
  return undefined;
}

const COMMON_HEADERS = {
  'metadata-flavor': 'Google',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

function answerHeaders(answer: Answer): OutgoingHttpHeaders {
  return {
    ...COMMON_HEADERS,
    'content-type': answer.type === 'json' ? 'application/json' : 'application/text',
    'content-length': String(Buffer.byteLength(answer.body)),
    ...(answer.retryAfter !== undefined && { 'retry-after': String(answer.retryAfter) }),
  };
}

const text = (status: number, body: string): Answer => ({ status, type: 'text', body });

function answerFor(
  context: HandlerContext,
  req: IncomingMessage,
  path: string,
  query: URLSearchParams | undefined,
): Answer | Promise<Answer> {
  const refused = refusal(req, context.hosts);
  if (refused) return text(refused.status, `${refused.message}\n`);
  if (path === '/') return text(200, 'computeMetadata/\n');
  if (path === '/computeMetadata' || path === '/computeMetadata/') return text(200, 'v1/\n');
  const node = nodeAt(context.tree, path);
  if (node === MALFORMED) return text(400, 'Malformed path.\n');
  if (node === undefined) return notFound();
  const rendered = render(
    node,
    query ? { recursive: query.get('recursive')?.toLowerCase() === 'true', json: query.get('alt') === 'json' } : PLAIN,
  );
  if (rendered.type !== 'minted') return { status: 200, ...rendered };
  if (rendered.leaf.kind === 'identity') return mintIdToken(context, query);
  const scopes = (query && parseScopes(query.get('scopes'))) ?? context.scopes;
  if (scopes.length === 0) return text(400, 'Invalid scopes parameter.\n');
  // A kept token is served at once, unless a check must run before any token is.
  const kept = context.beforeMint ? undefined : context.tokens.keptAccessToken(scopes);
  return kept ? tokenAnswer(kept) : mintAccessToken(context, scopes);
}

const MALFORMED = Symbol('malformed');
const indexes = new WeakMap<Directory, ReadonlyMap<string, Node>>();

/** The node `path` names: from the tree's index of plain paths, else segment by segment, decoded. */
function nodeAt(tree: Directory, path: string): Node | undefined | typeof MALFORMED {
  let index = indexes.get(tree);
  if (index === undefined) indexes.set(tree, (index = pathIndex(tree, BASE)));
  const indexed = index.get(path);
  if (indexed !== undefined) return indexed;
  if (path !== BASE && !path.startsWith(`${BASE}/`)) return undefined;
  const segments = path.slice(BASE.length + 1).split('/');
  // A directory is the same with or without its trailing slash.
  if (segments.at(-1) === '') segments.pop();
  try {
    return lookup(tree, segments.map(decodeURIComponent));
  } catch {
    return MALFORMED;
  }
}

async function mintAccessToken(context: HandlerContext, scopes: readonly string[]): Promise<Answer> {
  await context.beforeMint?.();
  const minted = await context.tokens.accessToken(scopes);
  return minted === undefined ? tooManyNew(context) : tokenAnswer(minted);
}

/** The last answer made for each token, with its expires_in: most requests get the same bytes as the last. */
const tokenAnswers = new WeakMap<ExpiringToken, { expiresIn: number; answer: Answer }>();

/** A token's answer as GCE writes it, headers included; made again when expires_in has moved. */
function tokenAnswer(token: ExpiringToken): Answer {
  const expiresIn = Math.max(0, Math.floor((token.expiry.getTime() - Date.now()) / 1000));
  const last = tokenAnswers.get(token);
  if (last?.expiresIn === expiresIn) return last.answer;
  const body = JSON.stringify({ access_token: token.token, expires_in: expiresIn, token_type: 'Bearer' });
  const answer: Answer = { status: 200, type: 'json', body };
  answer.headers = answerHeaders(answer);
  tokenAnswers.set(token, { expiresIn, answer });
  return answer;
}

async function mintIdToken(context: HandlerContext, query: URLSearchParams | undefined): Promise<Answer> {
  if (!context.tokens.idTokens)
    return text(404, 'This server makes no ID tokens: it impersonates no service account.\n');
  const audience = query?.get('audience');
  if (!audience || audience.length > MAX_PARAMETER) return text(400, 'non-empty audience parameter required\n');
  const format = query?.get('format') ?? null;
  if (format !== null && format !== 'standard' && format !== 'full') return text(400, 'Invalid format parameter.\n');
  await context.beforeMint?.();
  const minted = await context.tokens.idToken(audience);
  return minted === undefined ? tooManyNew(context) : text(200, minted.token);
}

/** A new scope set or audience past the server's rate; known ones are still served. */
const tooManyNew = (context: HandlerContext): Answer => ({
  ...text(429, 'Too many new scope sets and audiences; try again later.\n'),
  retryAfter: context.retryAfterSeconds,
});

/** `a,b` as GCE takes it; undefined when absent, [] when unusable. */
function parseScopes(value: string | null): string[] | undefined {
  if (value === null) return undefined;
  if (value.length > MAX_PARAMETER) return [];
  const scopes = value.split(',').map((scope) => scope.trim());
  return scopes.every((scope) => /^[\x21-\x7e]+$/.test(scope)) ? [...new Set(scopes)].sort() : [];
}

const notFound = () => text(404, 'Not found.\n');

/**
 * The status for a failed mint, by code: the TPM cannot sign now (503: the key, its
 * policy or the connection), Google would not exchange (502), the request asked for
 * what cannot be (400); anything else is the server's own fault (500).
 */
const FAILURE_STATUS: ReadonlyMap<string, number> = new Map([
  ['ERR_TOKEN_EXCHANGE', 502],
  ['ERR_INVALID_ARGUMENT', 400],
  ['ERR_KEY_FILE_INVALID', 503],
]);

function failure(err: unknown): Answer {
  const error = (err instanceof Error ? err.message : String(err)).slice(0, 500);
  if (!(err instanceof TpmJwtError)) {
    // The server's own fault: the client learns nothing of it, the log learns what.
    return { status: 500, type: 'json', body: JSON.stringify({ error: 'internal_error' }), error };
  }
  const status = FAILURE_STATUS.get(err.code) ?? (err.code.startsWith('ERR_TPM') ? 503 : 500);
  const body = JSON.stringify({ error: err.code, error_description: err.message });
  return { status, type: 'json', body, code: err.code, error };
}
