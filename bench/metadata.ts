/**
 * The metadata server's cost per cached-token request, against a bare node:http server
 * that answers the same bytes (the floor for any Node server on this machine), and
 * beside google-auth-library's own metadata client (gcp-metadata) asking our server.
 */
import { createServer, request, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Signer } from '../lib/index.js';
import { startMetadataServer } from '../lib/metadata/index.js';
import { overlayEnv } from '../test/helpers/env.js';

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';
const HEADERS = { 'metadata-flavor': 'Google' };

export interface MetadataFigures {
  ours: { perSecond: number; p50: number; p99: number };
  bare: { perSecond: number; p50: number; p99: number };
  /** gcp-metadata's instance('service-accounts/default/token') against our server, ms. */
  client: { p50: number; p99: number };
}

/** One GET on `agent`, resolved with its body. */
function get(port: number, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: TOKEN_PATH, headers: HEADERS, agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Sequential latencies (p50, p99, ms), then requests per second with `inFlight` at a time. */
async function measure(port: number, count: number, inFlight: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  try {
    for (let i = 0; i < 200; i++) await get(port, agent);
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await get(port, agent);
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next++ < count) await get(port, agent);
      }),
    );
    const perSecond = count / ((performance.now() - start) / 1000);
    return { perSecond, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
  } finally {
    agent.destroy();
  }
}

/** The figures for a jwt-access server whose token `signer` signs once, up front. */
export async function benchMetadata(signer: Signer, email: string, count: number): Promise<MetadataFigures> {
  const server = await startMetadataServer({ mode: 'jwt-access', signer, email, port: 0 });
  const bare = createServer();
  try {
    const port = Number(new URL(server.url).port);
    const agent = new Agent({ keepAlive: true });
    const body = await get(port, agent);
    agent.destroy();
    bare.on('request', (_req, res) => {
      res.writeHead(200, { 'metadata-flavor': 'Google', 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    const barePort = (bare.address() as AddressInfo).port;

    type Round = Awaited<ReturnType<typeof measure>>;
    const rounds = { ours: [] as Round[], bare: [] as Round[] };
    for (let i = 0; i < 3; i++) {
      rounds.bare.push(await measure(barePort, count, 16));
      rounds.ours.push(await measure(port, count, 16));
    }
    const middle = (xs: Round[]) => xs.sort((a, b) => b.perSecond - a.perSecond)[1]!;

    // gcp-metadata reads GCE_METADATA_HOST on every call.
    const restore = overlayEnv({ GCE_METADATA_HOST: server.host! });
    const gcpMetadata = await import('gcp-metadata');
    const times: number[] = [];
    try {
      for (let i = 0; i < 100 + count / 5; i++) {
        const start = performance.now();
        await gcpMetadata.instance('service-accounts/default/token');
        if (i >= 100) times.push(performance.now() - start);
      }
    } finally {
      restore();
    }
    times.sort((a, b) => a - b);
    return {
      ours: middle(rounds.ours),
      bare: middle(rounds.bare),
      client: { p50: percentile(times, 0.5), p99: percentile(times, 0.99) },
    };
  } finally {
    bare.close();
    await server.close();
  }
}
