/**
 * TLS client authentication with the TPM key: node:https requests through TpmTlsAgent reach
 * a node:https server that requires a client certificate, over TLS 1.3 and 1.2, with
 * ECDSA and RSA keys (PSS in 1.3, PKCS#1 in 1.2). The server sees the TPM key's certificate;
 * a kept-alive connection signs no more; what cannot work fails before or during the
 * handshake with a typed error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
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

  /**
   * `openssl s_server -Verify` as the peer: it requires a client certificate that verifies
   * against `client` (-verify_return_error), at one TLS version, and its -www page says
   * what it negotiated and whose certificate it saw.
   */
  async function opensslServer(client: string, version: 'tls1_2' | 'tls1_3'): Promise<{ port: number; stop(): void }> {
    const dir = swtpm.tempDir('s_server');
    const files = { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem'), ca: path.join(dir, 'ca.pem') };
    writeFileSync(files.key, tls.key);
    writeFileSync(files.cert, tls.cert);
    writeFileSync(files.ca, client);
    const child = spawn(
      'openssl',
      [
        ...['s_server', '-accept', '127.0.0.1:0', '-key', files.key, '-cert', files.cert, '-CAfile', files.ca],
        ...['-Verify', '1', '-verify_return_error', '-www', `-${version}`],
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const accept = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(out);
        if (accept) resolve(Number(accept[1]));
      });
      child.once('exit', (code) => reject(new Error(`openssl s_server exited ${code}`)));
    });
    return { port, stop: () => child.kill() };
  }

  for (const alg of ['ES256', 'RS256'] as const) {
    for (const version of ['tls1_3', 'tls1_2'] as const) {
      it(`openssl s_server -Verify accepts the ${alg} key over ${version}`, async () => {
        const peer = await opensslServer(keys[alg]!.certificate, version);
        const agent = agentFor(alg, { agent: { keepAlive: false } });
        try {
          const page = await new Promise<{ status: number; body: string }>((resolve, reject) => {
            const req = request({ host: '127.0.0.1', port: peer.port, path: '/', agent }, (res) => {
              let body = '';
              res.on('data', (chunk: Buffer) => (body += chunk.toString()));
              res.on('end', () => resolve({ status: res.statusCode!, body }));
            });
            req.once('error', reject);
            req.end();
          });
          assert.equal(page.status, 200);
          assert.match(page.body, new RegExp(`Protocol *: TLSv1\\.${version.at(-1)}`));
          assert.match(page.body, new RegExp(`Client certificate[\\s\\S]*Subject: CN *= *tls-${alg}`));
        } finally {
          agent.destroy();
          peer.stop();
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

  it('a TPM link cut mid-handshake: signed again; a TPM gone fails it typed; then it works', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti });
    // Without encryption: a cut link leaves the old session in a TPM with no resource
    // manager (swtpm here; /dev/tpmrm0 flushes it), which the suite would count as leaked.
    const relayed = await Tpm.open({ tcti: relay.tcti, encrypt: false });
    try {
      const key = await relayed.createKey({ alg: 'ES256' });
      const certificate = await key.certificate({ subject: 'cut' });
      const port = await server([certificate]);
      const agent = new TpmTlsAgent({ key, certificate, ca: tls.cert, agent: { keepAlive: false } });
      relay.setFaults([{ command: 'Sign', drop: 'mid-response', times: 1 }]);
      assert.equal((await get(port, agent)).status, 200, 'one cut: reconnected, signed again');
      // Every Sign cut: the TPM is gone for the handshake, which fails with a TPM error.
      relay.setFaults([{ command: 'Sign', drop: 'before' }]);
      const gone = await get(port, agent).then(
        () => undefined,
        (err: Error & { code?: string }) => err,
      );
      assert.ok(gone?.code?.startsWith('ERR_TPM'), `a typed TPM error, not ${gone?.stack}`);
      relay.setFaults([]);
      assert.equal((await get(port, agent)).status, 200, 'the TPM back: the next request works');
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
