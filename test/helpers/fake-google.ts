/**
 * A loopback stand-in for Google APIs, written for the tests: it verifies every Bearer
 * JWT with the key under test (jose) and serves the list calls the client libraries
 * make, plus a JWT-bearer token endpoint whose answers each test chooses.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';

import { jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';

import { readBody, send } from './http.js';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The Bearer JWT's verified claims and header; undefined for a non-JWT bearer. */
  claims?: JWTPayload;
  header?: ProtectedHeaderParameters;
  bearer?: string;
}

export interface TokenAnswer {
  status?: number;
  body?: unknown;
  /** Never answer (to test timeouts). */
  hang?: boolean;
  /** Answer this much later (a slow endpoint). */
  delayMs?: number;
}

export interface FakeGoogle {
  readonly origin: string;
  readonly port: number;
  readonly tokenUrl: string;
  readonly requests: SeenRequest[];
  /** Decides the token endpoint's answer from the verified assertion. */
  onToken: (assertion: JWTPayload) => TokenAnswer;
  /** Bearer tokens the API accepts without being JWTs (issued by the token endpoint). */
  readonly acceptedTokens: Set<string>;
  close(): Promise<void>;
}

/** Options for a Storage client (7 or 8) that sends every call, with `authClient`, to `google`. */
export function storageOptions(google: FakeGoogle, authClient: unknown) {
  return {
    authClient: authClient as never,
    apiEndpoint: google.origin,
    useAuthWithCustomEndpoint: true,
    projectId: 'p1',
    retryOptions: { autoRetry: false },
  };
}

export async function startFakeGoogle(publicKey: KeyObject): Promise<FakeGoogle> {
  const hanging = new Set<ServerResponse>();
  const fake: FakeGoogle = {
    origin: '',
    port: 0,
    tokenUrl: '',
    requests: [],
    acceptedTokens: new Set(),
    onToken: () => ({ status: 500, body: 'no token endpoint configured' }),
    close: async () => undefined,
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(await readBody(req));
      let assertion: JWTPayload;
      try {
        ({ payload: assertion } = await jwtVerify(form.get('assertion') ?? '', publicKey, { audience: fake.tokenUrl }));
      } catch (err) {
        return send(res, 400, { error: 'invalid_grant', error_description: (err as Error).message });
      }
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        return send(res, 400, { error: 'unsupported_grant_type' });
      }
      fake.requests.push({ method: 'POST', path: url.pathname, headers: req.headers, claims: assertion });
      const answer = fake.onToken(assertion);
      if (answer.hang) {
        hanging.add(res);
        return;
      }
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      return send(res, answer.status ?? 200, answer.body);
    }

    const seen: SeenRequest = { method: req.method ?? '', path: url.pathname, headers: req.headers };
    fake.requests.push(seen);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer) return send(res, 401, { error: { code: 401, message: 'no bearer token' } });
    seen.bearer = bearer;
    if (!fake.acceptedTokens.has(bearer)) {
      try {
        const verified = await jwtVerify(bearer, publicKey);
        seen.claims = verified.payload;
        seen.header = verified.protectedHeader;
      } catch (err) {
        return send(res, 401, { error: { code: 401, message: (err as Error).message } });
      }
    }
    await readBody(req);
    if (url.pathname === '/storage/v1/b') {
      return send(res, 200, { kind: 'storage#buckets', items: [{ kind: 'storage#bucket', id: 'b1', name: 'b1' }] });
    }
    const topics = /^\/v1\/projects\/([^/]+)\/topics$/.exec(url.pathname);
    if (topics) return send(res, 200, { topics: [{ name: `projects/${topics[1]}/topics/t1` }] });
    return send(res, 404, { error: { code: 404, message: `no ${url.pathname}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(fake, {
    port,
    origin: `http://127.0.0.1:${port}`,
    tokenUrl: `http://127.0.0.1:${port}/token`,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
  return fake;
}
