/**
 * One HTTP(S) POST and its answer, for token servers a device may reach through a private
 * CA (Vault, AWS) or over mutual TLS (Google's mTLS endpoints): node:https, where `ca` can
 * replace the system's roots and `agent` can be a TpmTlsAgent (fetch takes neither).
 * Rejects only when no answer came; any status resolves.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type Agent } from 'node:https';

import { messageWithCauses, ownError, TpmJwtError } from './errors.js';

export interface PostOptions {
  headers: Record<string, string>;
  /** PEM CA certificates to trust instead of the system's (https only). */
  ca?: string | undefined;
  /** The agent to connect through (https only): a TpmTlsAgent for mutual TLS. */
  agent?: Agent | undefined;
  /** No answer within this long rejects; default 30 s. */
  timeoutMs?: number;
}

export function post(url: URL, body: string, options: PostOptions): Promise<{ status: number; text: string }> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: options.headers,
        timeout: timeoutMs,
        ...(options.ca !== undefined && { ca: options.ca }),
        ...(options.agent !== undefined && { agent: options.agent }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** An answer whose body was read as JSON: `json` undefined when it is not JSON. */
export interface JsonAnswer {
  status: number;
  json: unknown;
  text: string;
}

/**
 * post(), its answer read as JSON, for `service` (named in the error). No answer at all
 * is ERR_TOKEN_EXCHANGE with the reason and its cause; a TPM or TLS failure under it (a
 * TpmTlsAgent's) keeps its own code. Any status resolves: what it means is the caller's.
 */
export async function postForJson(url: URL, body: string, options: PostOptions, service: string): Promise<JsonAnswer> {
  let status: number;
  let text: string;
  try {
    ({ status, text } = await post(url, body, options));
  } catch (err) {
    throw (
      ownError(err) ??
      new TpmJwtError(
        'ERR_TOKEN_EXCHANGE',
        `${service} at ${url.origin} could not be reached: ${messageWithCauses(err)}`,
        {
          cause: err,
        },
      )
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, json, text };
}
