/**
 * One HTTP(S) POST and its answer, for the token servers of other clouds (Vault, AWS) that
 * a device may reach through a private CA: node:https, where `ca` can replace the system's
 * roots (fetch cannot take one). Rejects only when no answer came; any status resolves.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface PostOptions {
  headers: Record<string, string>;
  /** PEM CA certificates to trust instead of the system's (https only). */
  ca?: string | undefined;
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
