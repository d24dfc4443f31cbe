/**
 * TLS client authentication with the TPM key: node:https requests through TpmTlsAgent reach
 * a node:https server that requires a client certificate, over TLS 1.3 and 1.2, with
 * ECDSA and RSA keys (PSS in 1.3, PKCS#1 in 1.2). The server sees the TPM key's certificate;
 * a kept-alive connection signs no more; what cannot work fails before or during the
 * handshake with a typed error.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

import { Tpm, type TpmKey } from '../lib/index.js';
import { startChipRelay } from '../lib/testing/index.js';
import { TpmTlsAgent, type TpmTlsAgentOptions } from '../lib/tls/index.js';
import { loopbackTls, type LoopbackTls } from './helpers/loopback-tls.js';
import { useSwtpm } from './helpers/swtpm.js';

interface Seen {
  fingerprint: string;
  protocol: string | null;
  port: number | undefined;
}

/** GET / through `agent`: the status and what the server saw of the client. */
function get(port: number, agent: TpmTlsAgent, host = '127.0.0.1'): Promise<{ status: number; seen: Seen }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, seen: JSON.parse(body) as Seen }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('36 TLS client authentication with the TPM key', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let tls: LoopbackTls;
  const keys: Partial<Record<'ES256' | 'RS256', { key: TpmKey; certificate: string }>> = {};
  const servers: Server[] = [];

  /** A server that requires a client certificate issued by (here: equal to) one of `clients`. */
  async function server(
    clients: string[],
    maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3',
    options: { identity?: LoopbackTls; close?: boolean } = {},
  ): Promise<number> {
    const { key, cert } = options.identity ?? tls;
    const https = createServer(
      { key, cert, ca: clients, requestCert: true, rejectUnauthorized: true, maxVersion },
      (req, res) => {
        // The reply and the end of the connection arrive together.
        if (options.close) res.setHeader('connection', 'close');
        const socket = req.socket as TLSSocket;
        const seen: Seen = {
          fingerprint: socket.getPeerCertificate().fingerprint256,
          protocol: socket.getProtocol(),
          port: socket.remotePort,
        };
        res.end(JSON.stringify(seen));
      },
    );
    servers.push(https);
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    return (https.address() as AddressInfo).port;
  }

  before(async () => {
    tls = loopbackTls(swtpm.tempDir('tls'), 'server');
    tpm = await swtpm.openTpm();
    for (const alg of ['ES256', 'RS256'] as const) {
      const key = await tpm.createKey({ alg });
      keys[alg] = { key, certificate: await key.certificate({ subject: `tls-${alg}` }) };
    }
  });

  after(async () => {
    for (const s of servers) await new Promise((resolve) => s.close(resolve));
  });

  const agentFor = (alg: 'ES256' | 'RS256', extra: Partial<TpmTlsAgentOptions> = {}) =>
    new TpmTlsAgent({ key: keys[alg]!.key, certificate: keys[alg]!.certificate, ca: tls.cert, ...extra });

  for (const alg of ['ES256', 'RS256'] as const) {
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      it(`${alg} over ${version}: the server sees the TPM key's certificate; keep-alive reuses it`, async () => {
        const port = await server([keys[alg]!.certificate], version);
        const agent = agentFor(alg);
        try {
          const first = await get(port, agent);
          assert.equal(first.status, 200);
          assert.equal(first.seen.protocol, version);
          const expected = new (await import('node:crypto')).X509Certificate(keys[alg]!.certificate).fingerprint256;
          assert.equal(first.seen.fingerprint, expected);
          const second = await get(port, agent);
          assert.equal(second.seen.port, first.seen.port, 'the same connection, kept alive');
        } finally {
          agent.destroy();
        }
      });
    }
  }

  it('one TPM signature per handshake, none for a kept-alive request; a TPM_RC_RETRY on it is invisible', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti });
    const relayed = await Tpm.open({ tcti: relay.tcti });
    try {
      const key = await relayed.createKey({ alg: 'ES256' });
      const certificate = await key.certificate({ subject: 'relayed' });
      const port = await server([certificate]);
      const agent = new TpmTlsAgent({ key, certificate, ca: tls.cert });
      relay.clear();
      relay.setFaults([{ command: 'Sign', rc: 'RETRY', nth: 1 }]);
      const first = await get(port, agent);
      const second = await get(port, agent);
      assert.equal(second.seen.port, first.seen.port);
      const signs = relay.log.filter((entry) => entry.command === 'Sign');
      assert.deepEqual(
        signs.map((entry) => entry.fault !== undefined),
        [true, false],
        'the first Sign answered RETRY and was made again; no other',
      );
      agent.destroy();
    } finally {
      await relayed.close();
      await relay.close();
    }
  });

  it("refuses a server whose certificate is not trusted, or not for the host's name", async () => {
    const port = await server([keys.ES256!.certificate]);
    const untrusted = agentFor('ES256', { ca: keys.RS256!.certificate });
    await assert.rejects(get(port, untrusted), { code: 'ERR_TLS', message: /certificate/ });
    untrusted.destroy();
    const wrongName = agentFor('ES256', { servername: 'other.example.com' });
    await assert.rejects(get(port, wrongName), { code: 'ERR_TLS' });
    wrongName.destroy();
  });

  it("checks an IP address host against the certificate's addresses, as a name is checked", async () => {
    const dnsOnly = loopbackTls(swtpm.tempDir('tls-dns'), 'dns-only', 'DNS:other.example.com');
    const port = await server([keys.ES256!.certificate], 'TLSv1.3', { identity: dnsOnly });
    const agent = agentFor('ES256', { ca: dnsOnly.cert });
    await assert.rejects(get(port, agent), { code: 'ERR_TLS', message: /mismatch/ });
    agent.destroy();
  });

  it('reads a reply that arrives with the end of the connection (Connection: close)', async () => {
    const port = await server([keys.ES256!.certificate], 'TLSv1.3', { close: true });
    const agent = agentFor('ES256');
    for (let i = 0; i < 3; i++) assert.equal((await get(port, agent)).status, 200);
    agent.destroy();
  });

  it('refuses a certificate that is not for the TPM key before connecting', async () => {
    const port = await server([keys.ES256!.certificate]);
    const mismatched = agentFor('ES256', { certificate: keys.RS256!.certificate });
    await assert.rejects(get(port, mismatched), { code: 'ERR_INVALID_ARGUMENT', message: /not for the TPM key/ });
    mismatched.destroy();
  });

  it('a TPM closed under the agent fails its request with ERR_TPM_CLOSED, and nothing hangs', async () => {
    const own = await swtpm.openTpm();
    const key = await own.createKey({ alg: 'ES256' });
    const certificate = await key.certificate({ subject: 'closed' });
    const port = await server([certificate]);
    const agent = new TpmTlsAgent({ key, certificate, ca: tls.cert });
    await own.close();
    await assert.rejects(get(port, agent), { code: 'ERR_TPM_CLOSED' });
    agent.destroy();
  });

  it('a server that does not trust the client certificate ends the connection', async () => {
    const port = await server([keys.RS256!.certificate]);
    const agent = agentFor('ES256');
    await assert.rejects(get(port, agent));
    agent.destroy();
  });
});
