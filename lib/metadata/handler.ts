/**
 * One metadata request, from admission to answer: refuse what guard.ts refuses, find
 * the path in the tree, render it as GCE does, mint for token and identity. Whatever a
 * request holds, the answer is a status and a body: a bad request never throws out of
 * here, and no answer but a 200 for a minted leaf carries a token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { TpmJwtError } from '../errors.js';
import { refusal } from './guard.js';
import { lookup, render, type Directory, type MintedLeaf } from './tree.js';
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
  ms: number;
  code?: string;
  /** Why a request failed on the server's side (5xx): a TPM or token-server message, never a token. */
  error?: string;
}

interface Answer {
  status: number;
  type: 'text' | 'json';
  body: string;
  code?: string;
  error?: string;
  retryAfter?: number | undefined;
}

const BASE = '/computeMetadata/v1';
const MAX_PARAMETER = 2048;

/** Answers `req` on `res`; settles when the answer is written, and never rejects. */
export async function handle(context: HandlerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const url = req.url ?? '/';
  const at = url.indexOf('?');
  const path = at === -1 ? url : url.slice(0, at);
  const query = new URLSearchParams(at === -1 ? '' : url.slice(at + 1));
  let answer: Answer;
  try {
    answer = await answerFor(context, req, path, query);
  } catch (err) {
    answer = failure(err);
  }
  res.writeHead(answer.status, {
    'metadata-flavor': 'Google',
    'content-type': answer.type === 'json' ? 'application/json' : 'application/text',
    'content-length': Buffer.byteLength(answer.body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(answer.retryAfter !== undefined && { 'retry-after': String(answer.retryAfter) }),
    ...(context.closing() && { connection: 'close' }),
  });
  res.end(answer.body);
  try {
    context.log({
      method: req.method ?? '',
      path: path.slice(0, 256),
      status: answer.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
      ...(answer.code !== undefined && { code: answer.code }),
      ...(answer.error !== undefined && { error: answer.error }),
    });
  } catch {
    // A log sink that fails (stderr closed) must not take requests down with it.
  }
}

const text = (status: number, body: string): Answer => ({ status, type: 'text', body });

async function answerFor(
  context: HandlerContext,
  req: IncomingMessage,
  path: string,
  query: URLSearchParams,
): Promise<Answer> {
  const refused = refusal(req, context.hosts);
  if (refused) return text(refused.status, `${refused.message}\n`);
  if (path === '/') return text(200, 'computeMetadata/\n');
  if (path === '/computeMetadata' || path === '/computeMetadata/') return text(200, 'v1/\n');
  if (path !== BASE && !path.startsWith(`${BASE}/`)) return notFound();
  const segments = path.slice(BASE.length + 1).split('/');
  // A directory is the same with or without its trailing slash.
  if (segments.at(-1) === '') segments.pop();
  let names: string[];
  try {
    names = segments.map(decodeURIComponent);
  } catch {
    return text(400, 'Malformed path.\n');
  }
  const node = lookup(context.tree, names);
  if (node === undefined) return notFound();
  const rendered = render(node, {
    recursive: query.get('recursive')?.toLowerCase() === 'true',
    json: query.get('alt') === 'json',
  });
  if (rendered.type !== 'minted') return { status: 200, ...rendered };
  return mint(context, rendered.leaf, query);
}

async function mint(context: HandlerContext, leaf: MintedLeaf, query: URLSearchParams): Promise<Answer> {
  if (leaf.kind === 'token') {
    const scopes = parseScopes(query.get('scopes')) ?? context.scopes;
    if (scopes.length === 0) return text(400, 'Invalid scopes parameter.\n');
    await context.beforeMint?.();
    const minted = await context.tokens.accessToken(scopes);
    if (minted === undefined) return tooManyNew(context);
    const { token, expiry } = minted;
    const body = JSON.stringify({
      access_token: token,
      expires_in: Math.max(0, Math.floor((expiry.getTime() - Date.now()) / 1000)),
      token_type: 'Bearer',
    });
    return { status: 200, type: 'json', body };
  }
  if (!context.tokens.idTokens)
    return text(404, 'This server makes no ID tokens: it impersonates no service account.\n');
  const audience = query.get('audience');
  if (!audience || audience.length > MAX_PARAMETER) return text(400, 'non-empty audience parameter required\n');
  const format = query.get('format');
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
