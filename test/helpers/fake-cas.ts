/**
 * A loopback stand-in for Google Certificate Authority Service's caPools.certificates.create
 * (POST /v1/projects/P/locations/L/caPools/POOL/certificates), written from the API
 * reference: certificateId ([a-zA-Z0-9_-]{1,63}) and an optional requestId (a UUID) in
 * the query, a Bearer token, a JSON Certificate with pemCsr and lifetime (a Duration,
 * "NNNs") and optionally certificateTemplate, nothing else. It issues from `ca` and answers
 * the Certificate resource with name, pemCertificate and pemCertificateChain (issuer to root).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { CertificateAuthority } from '../../lib/enroll/index.js';
import { readCertificationRequest } from '../../lib/enroll/certification-request.js';
import { readBody, send } from './http.js';

export interface FakeCas {
  readonly endpoint: string;
  /** Each create call: what was refused, or the certificate's name. */
  readonly calls: { refused?: string; name?: string; lifetime?: string; template?: string }[];
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CREATE = /^\/v1\/(projects\/[a-z0-9-]+\/locations\/[a-z0-9-]+\/caPools\/[A-Za-z0-9_-]+)\/certificates$/;

export async function startFakeCas(options: {
  token: string;
  ca: CertificateAuthority;
  root: string;
}): Promise<FakeCas> {
  const calls: FakeCas['calls'] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '', 'http://cas');
    const refuse = (status: number, why: string) => {
      calls.push({ refused: why });
      send(res, status, { error: { code: status, message: why, status: 'INVALID_ARGUMENT' } });
    };
    const pool = CREATE.exec(url.pathname)?.[1];
    if (req.method !== 'POST' || !pool) return refuse(404, `no such method ${req.method} ${url.pathname}`);
    if (req.headers.authorization !== `Bearer ${options.token}`) return refuse(401, 'no valid Bearer token');
    if (!/^application\/json/.test(req.headers['content-type'] ?? '')) return refuse(400, 'not JSON');
    const id = url.searchParams.get('certificateId');
    if (!id || !/^[a-zA-Z0-9_-]{1,63}$/.test(id)) return refuse(400, 'certificateId');
    const requestId = url.searchParams.get('requestId');
    if (requestId !== null && !UUID.test(requestId)) return refuse(400, 'requestId must be a UUID');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return refuse(400, 'body is not JSON');
    }
    const unknown = Object.keys(body).filter((k) => !['pemCsr', 'lifetime', 'certificateTemplate'].includes(k));
    if (unknown.length > 0) return refuse(400, `unknown fields ${unknown.join(', ')}`);
    if (typeof body['lifetime'] !== 'string' || !/^[0-9]+(\.[0-9]{1,9})?s$/.test(body['lifetime'])) {
      return refuse(400, 'lifetime must be a Duration');
    }
    let request;
    try {
      request = readCertificationRequest(body['pemCsr']);
    } catch (err) {
      return refuse(400, `pemCsr: ${(err as Error).message}`);
    }
    const issued = await options.ca.issue({ request, lifetimeSeconds: parseFloat(body['lifetime']) });
    const name = `${pool}/certificates/${id}`;
    calls.push({
      name,
      lifetime: body['lifetime'],
      ...(typeof body['certificateTemplate'] === 'string' && { template: body['certificateTemplate'] }),
    });
    send(res, 200, {
      name,
      pemCertificate: issued.certificate,
      pemCertificateChain: [issued.chain, options.root],
      lifetime: body['lifetime'],
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
