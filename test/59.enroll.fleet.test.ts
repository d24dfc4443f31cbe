/**
 * Enrolling a fleet: a manufactured swtpm (EK certificates under a CA) enrolls its key
 * through the enrollment handler, with a CA key in a file, a CA key in a TPM, and Google
 * Certificate Authority Service (a stand-in that checks each call); the certificate
 * chains to the fleet's root, is for the TPM key and for client authentication, and gets
 * a token from the X.509 STS stand-in. Then each refusal, with its reason: EK outside the
 * roots, an imported key, a request for another key, a replayed, expired or foreign
 * ticket, a wrong activation answer, a device the policy refuses; and two replicas
 * finishing each other's enrollments.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { OAuth2Client } from 'google-auth-library';

import { activateCredential, attestKey } from '../lib/attest/index.js';
import { pem } from '../lib/encoding.js';
import { chainToRoots, parseCertificates } from '../lib/attest/certificates.js';
import {
  certificateAuthority,
  createEnrollmentHandler,
  enroll,
  googleCasAuthority,
  inventoryPolicy,
  renewEnrollment,
  type CertificateAuthority,
  type EnrollmentHandlerOptions,
} from '../lib/enroll/index.js';
import { TpmIdentityPoolClient } from '../lib/google/index.js';
import { federatedAccessToken } from '../lib/google/wif-client.js';
import type { Tpm, TpmKey } from '../lib/index.js';
import { cli, startCliServer } from './helpers/cli.js';
import { overlayEnv } from './helpers/env.js';
import { startFakeCas } from './helpers/fake-cas.js';
import { startFakeSts } from './helpers/fake-sts.js';
import { loopbackTls, type LoopbackTls } from './helpers/loopback-tls.js';
import { useSwtpm } from './helpers/swtpm.js';
import { makeTestCa, type TestCa } from './helpers/test-ca.js';
import { manufacture } from './helpers/ek-ca.js';

const DEVICE = '0x81005901';
const AUDIENCE =
  '//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/devices/providers/fleet-ca';

describe('59 enrolling a fleet: from a TPM attestation to a device certificate', () => {
  const swtpm = useSwtpm({ ekCertificates: true });
  let tpm: Tpm;
  let dir: string;
  let fleet: TestCa;
  let fileCa: CertificateAuthority;
  const sealingKey = randomBytes(32).toString('base64');
  const servers: Server[] = [];

  /** An enrollment server on loopback; its base URL. */
  async function serve(options: Partial<EnrollmentHandlerOptions> = {}): Promise<string> {
    const server = createServer(
      createEnrollmentHandler({ ekRoots: swtpm.ekCa.root, sealingKey, ca: fileCa, allow: () => true, ...options }),
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/enroll`;
  }

  /** The EK roots and chain as files, for the command line. */
  const ekRootFile = () => writeTo('ek-root.pem', swtpm.ekCa.root);
  const ekChainFile = () => writeTo('ek-chain.pem', swtpm.ekCa.intermediate);
  function writeTo(name: string, text: string): string {
    writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  }

  /** One step by hand: the status and the answer. */
  async function step(base: string, name: string, body: unknown): Promise<{ status: number; body: any }> {
    const answer = await fetch(`${base}/${name}`, { method: 'POST', body: JSON.stringify(body) });
    return { status: answer.status, body: await answer.json() };
  }

  const device = (extra: Partial<Parameters<typeof enroll>[0]> = {}) => ({
    key: DEVICE,
    subject: 'CN=device-42',
    tcti: swtpm.tcti,
    ekChain: swtpm.ekCa.intermediate,
    ...extra,
  });

  /** The certificate chains to the fleet's root through the chain, is for `key`, and is for client authentication. */
  function assertIssued(issued: { certificate: string; chain: string }, key: TpmKey, root: string) {
    const [leaf] = parseCertificates(issued.certificate, 'certificate');
    assert.ok(leaf!.publicKey.equals(key.publicKey), 'for the TPM key');
    const trusted = chainToRoots(leaf!, parseCertificates(issued.chain, 'chain'), parseCertificates(root, 'root'));
    assert.ok(trusted.ok, trusted.ok ? '' : trusted.why);
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: issued.certificate, encoding: 'utf8' });
    assert.match(text, /TLS Web Client Authentication/);
    assert.match(text, /CA:FALSE/);
  }

  before(async () => {
    dir = swtpm.tempDir('enroll');
    fleet = makeTestCa(dir);
    fileCa = certificateAuthority({
      certificate: readFileSync(fleet.intermediate, 'utf8'),
      key: readFileSync(path.join(dir, 'intermediate.key'), 'utf8'),
    });
    tpm = await swtpm.openTpm();
    await tpm.createKey({ alg: 'ES256', persist: Number(DEVICE) });
    swtpm.cleanup(() => tpm.evict(Number(DEVICE)));
  });
  after(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  it('enrolls the key (file CA); the certificate gets a token at the X.509 STS', async () => {
    const issued = await enroll({ ...device(), server: await serve() });
    const key = await tpm.loadKey(DEVICE);
    assertIssued(issued, key, readFileSync(fleet.root, 'utf8'));
    assert.equal(new X509Certificate(issued.certificate).subject, 'CN=device-42');

    // On to X.509 federation with what enroll wrote.
    const out = path.join(dir, 'wif');
    const certFile = path.join(dir, 'device.pem');
    const chainFile = path.join(dir, 'chain.pem');
    writeFileSync(certFile, issued.certificate);
    writeFileSync(chainFile, issued.chain);
    const stsTls = loopbackTls(dir, 'sts');
    const sts = await startFakeSts({
      audience: AUDIENCE,
      x509: { tls: stsTls, trustAnchor: readFileSync(fleet.root, 'utf8') },
    });
    const restore = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' });
    try {
      const config = await cli([
        ...['wif-config', '--x509', '--key', DEVICE, '--cert', certFile, '--chain', chainFile],
        ...['--trust-anchor', fleet.root, '--project-number', '123456', '--pool', 'devices'],
        ...['--provider', 'fleet-ca', '--out-dir', out, '--tcti', swtpm.tcti, '--token-url', sts.tokenUrl],
      ]);
      assert.equal(config.code, 0, config.stderr);
      const client = await TpmIdentityPoolClient.fromCredentialConfiguration(
        path.join(out, 'credential-configuration.json'),
        { ca: stsTls.cert },
      );
      try {
        assert.ok(sts.issued.has((await federatedAccessToken(client)).token));
        assert.equal(sts.exchanged.at(-1)!.sub, 'device-42');
      } finally {
        await client.close();
      }
    } finally {
      restore();
      await sts.close();
    }
  });

  it('enrolls with the CA key in a TPM', async () => {
    const caKey = await tpm.createKey({ alg: 'ES256' });
    writeFileSync(path.join(dir, 'tpm-ca.csr'), await caKey.csr({ subject: 'CN=Fleet TPM Issuing' }));
    execFileSync(
      'openssl',
      [
        ...['x509', '-req', '-in', 'tpm-ca.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '1'],
        ...['-extfile', 'ca.ext', '-out', 'tpm-ca.pem'],
      ],
      { cwd: dir, stdio: 'ignore' },
    );
    const tpmCa = certificateAuthority({ certificate: readFileSync(path.join(dir, 'tpm-ca.pem'), 'utf8'), key: caKey });
    const issued = await enroll({ ...device(), server: await serve({ ca: tpmCa }) });
    assertIssued(issued, await tpm.loadKey(DEVICE), readFileSync(fleet.root, 'utf8'));
    assert.match(new X509Certificate(issued.certificate).issuer, /Fleet TPM Issuing/);
  });

  it("gives the policy's subject instead of the requested one", async () => {
    const server = await serve({ subject: ({ jwk }) => `CN=device-${String(jwk.x).slice(0, 8)},O=Fleet` });
    const issued = await enroll({ ...device(), server });
    const jwk = (await tpm.loadKey(DEVICE)).publicKey.export({ format: 'jwk' });
    assert.equal(new X509Certificate(issued.certificate).subject, `O=Fleet\nCN=device-${jwk.x!.slice(0, 8)}`);
  });

  it('enrolls through Google Certificate Authority Service, called through google-auth-library', async () => {
    const token = 'ya29.cas-caller';
    const cas = await startFakeCas({ token, ca: fileCa, root: readFileSync(fleet.root, 'utf8') });
    try {
      const client = new OAuth2Client();
      client.setCredentials({ access_token: token, expiry_date: Date.now() + 3_600_000 });
      const pool = 'projects/fleet-1/locations/us-central1/caPools/devices';
      const template = 'projects/fleet-1/locations/us-central1/certificateTemplates/device';
      const ca = googleCasAuthority({ caPool: pool, certificateTemplate: template, client, endpoint: cas.endpoint });
      const issued = await enroll({ ...device(), server: await serve({ ca, lifetimeSeconds: 86_400 }) });
      assertIssued(issued, await tpm.loadKey(DEVICE), readFileSync(fleet.root, 'utf8'));
      assert.deepEqual(
        cas.calls.map((c) => c.refused),
        [undefined],
      );
      assert.match(cas.calls[0]!.name!, new RegExp(`^${pool}/certificates/device-[0-9a-f-]{36}$`));
      assert.equal(cas.calls[0]!.lifetime, '86400s');
      assert.equal(cas.calls[0]!.template, template);
      // A caller CAS does not know is refused by it; the device hears a server failure, worth a retry.
      const stranger = new OAuth2Client();
      stranger.setCredentials({ access_token: 'ya29.other', expiry_date: Date.now() + 3_600_000 });
      const refused = googleCasAuthority({ caPool: pool, client: stranger, endpoint: cas.endpoint });
      await assert.rejects(enroll({ ...device(), server: await serve({ ca: refused }) }), {
        code: 'ERR_TOKEN_EXCHANGE',
        message: /answered 500/,
      });
      assert.equal(cas.calls.at(-1)!.refused, 'no valid Bearer token');
      assert.throws(() => googleCasAuthority({ caPool: 'devices' }), { code: 'ERR_INVALID_ARGUMENT' });
    } finally {
      await cas.close();
    }
  });

  it("two replicas with one sealing key finish each other's enrollments; a third with another key cannot", async () => {
    const [a, b] = [await serve(), await serve()];
    const attestation = await attestKey({ key: DEVICE, tcti: swtpm.tcti, ekChain: swtpm.ekCa.intermediate });
    const csr = await (await tpm.loadKey(DEVICE)).csr({ subject: 'CN=device-42' });
    const first = await step(a, 'attest', { attestation, csr });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const response = await activateCredential(first.body.challenge, { tcti: swtpm.tcti });
    const body = { attestation, csr, ticket: first.body.ticket, response };

    const elsewhere = await serve({ sealingKey: randomBytes(32) });
    const foreign = await step(elsewhere, 'activate', body);
    assert.equal(foreign.status, 403);
    assert.match(foreign.body.error.message, /does not open with this server's sealing key/);

    const done = await step(b, 'activate', body);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assertIssued(done.body, await tpm.loadKey(DEVICE), readFileSync(fleet.root, 'utf8'));
    // The same answer again on that replica: a replay.
    const replay = await step(b, 'activate', body);
    assert.equal(replay.status, 403);
    assert.match(replay.body.error.message, /already used: a replay/);
  });

  it('tpm-jwt serve-enrollment (an inventory) and tpm-jwt enroll: the files, and what to run next', async () => {
    // The inventory: this TPM's EK certificates (either may be the one activation proves), and the subject.
    const attestation = await attestKey({ key: DEVICE, tcti: swtpm.tcti, ekChain: swtpm.ekCa.intermediate });
    const lines = attestation.ek.certificates.map((ek) => `${new X509Certificate(ek.pem).fingerprint256} CN=device-7`);
    const inventory = writeTo('inventory.txt', `# EK certificate SHA-256, subject\n${lines.join('\n')}\n`);
    const server = await startCliServer(
      [
        ...['serve-enrollment', '--ca-roots', ekRootFile(), '--inventory', inventory, '--ca-cert', fleet.intermediate],
        ...['--ca-key', path.join(dir, 'intermediate.key'), '--ca-chain', fleet.root, '--listen', '127.0.0.1:0'],
        ...['--lifetime', '7'],
      ],
      { TPM_JWT_ENROLLMENT_SEALING_KEY: sealingKey },
    );
    try {
      assert.match(server.line, /^http:\/\/127\.0\.0\.1:\d+\/v1\/enroll$/);
      const out = path.join(dir, 'enrolled');
      const args = ['enroll', '--server', server.line, '--key', DEVICE, '--subject', 'CN=device-7', '--out-dir', out];
      const flags = ['--tcti', swtpm.tcti, '--ek-chain', ekChainFile()];
      const result = await cli([...args, ...flags]);
      assert.equal(result.code, 0, result.stderr);
      for (const name of ['device.pem', 'chain.pem']) assert.equal(statSync(path.join(out, name)).mode & 0o777, 0o644);
      const certificate = readFileSync(path.join(out, 'device.pem'), 'utf8');
      assertIssued(
        { certificate, chain: readFileSync(path.join(out, 'chain.pem'), 'utf8') },
        await tpm.loadKey(DEVICE),
        readFileSync(fleet.root, 'utf8'),
      );
      // --lifetime 7, capped at the CA certificate's own end (a day away here).
      const caEnd = Date.parse(new X509Certificate(readFileSync(fleet.intermediate)).validTo);
      const expected = Math.min(Date.now() + 7 * 86_400_000, caEnd);
      assert.ok(Math.abs(Date.parse(new X509Certificate(certificate).validTo) - expected) < 60_000);
      assert.match(result.stdout, new RegExp(`tpm-jwt wif-config --x509 --key ${DEVICE} --cert ${out}/device.pem`));
      // The files are kept without --force, before the TPM is asked anything.
      const again = await cli([...args, ...flags]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /device\.pem exists; pass --force/);
      // Another subject than the inventory's is refused, with the reason.
      const other = await cli([...args.map((a) => (a === 'CN=device-7' ? 'CN=device-8' : a)), ...flags, '--force']);
      assert.equal(other.code, 1);
      assert.match(other.stderr, /ERR_ENROLLMENT_REFUSED.*the inventory gives it the subject CN=device-7/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  describe('renewal over mutual TLS with the current certificate', () => {
    let tls: LoopbackTls;
    /** An https enrollment server that asks for client certificates; its base URL. */
    async function serveTls(options: Partial<EnrollmentHandlerOptions> = {}): Promise<string> {
      const handler = createEnrollmentHandler({
        ekRoots: swtpm.ekCa.root,
        sealingKey,
        ca: fileCa,
        renewRoots: readFileSync(fleet.intermediate, 'utf8'),
        allow: () => true,
        ...options,
      });
      const server = createHttpsServer(
        { key: tls.key, cert: tls.cert, requestCert: true, rejectUnauthorized: false },
        handler,
      );
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `https://127.0.0.1:${(server.address() as AddressInfo).port}/v1/enroll`;
    }
    before(() => {
      tls = loopbackTls(dir, 'enrollment');
    });

    it('renews without an attestation: a new certificate for the same key; tpm-jwt enroll --renew', async () => {
      const server = await serveTls();
      const first = await enroll({ ...device(), server, ca: tls.cert });
      const renewed = await renewEnrollment({
        server,
        key: DEVICE,
        tcti: swtpm.tcti,
        certificate: first.certificate,
        chain: first.chain,
        subject: 'CN=device-42',
        ca: tls.cert,
      });
      const key = await tpm.loadKey(DEVICE);
      assertIssued(renewed, key, readFileSync(fleet.root, 'utf8'));
      const [a, b] = [first, renewed].map((issued) => new X509Certificate(issued.certificate));
      assert.notEqual(a!.serialNumber, b!.serialNumber);
      assert.equal(b!.subject, a!.subject);
      // A renewal renews an identity; it cannot change it.
      await assert.rejects(
        renewEnrollment({
          server,
          key: DEVICE,
          tcti: swtpm.tcti,
          certificate: renewed.certificate,
          chain: renewed.chain,
          subject: 'CN=device-43',
          ca: tls.cert,
        }),
        { code: 'ERR_ENROLLMENT_REFUSED', message: /a renewal keeps the subject CN=device-42/ },
      );

      // The command: --renew replaces the files in --out-dir.
      const out = path.join(dir, 'renewing');
      writeTo('enrollment-tls.pem', tls.cert);
      const base = ['enroll', '--server', server, '--key', DEVICE, '--subject', 'CN=device-42', '--out-dir', out];
      const flags = ['--tcti', swtpm.tcti, '--ca-cert', path.join(dir, 'enrollment-tls.pem')];
      assert.equal((await cli([...base, ...flags, '--ek-chain', ekChainFile()])).code, 0);
      const before = readFileSync(path.join(out, 'device.pem'), 'utf8');
      const result = await cli([...base, ...flags, '--renew']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /^renewed .*device\.pem \(valid to /);
      const after = readFileSync(path.join(out, 'device.pem'), 'utf8');
      assert.notEqual(after, before);
      assertIssued(
        { certificate: after, chain: readFileSync(path.join(out, 'chain.pem'), 'utf8') },
        key,
        readFileSync(fleet.root, 'utf8'),
      );
    });

    it('refuses a renewal without a client certificate, from a stranger, or where attestation is wanted', async () => {
      const server = await serveTls();
      // A connection that presents no certificate.
      const plain = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(`${server}/renew`, { method: 'POST', ca: tls.cert }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.once('error', reject);
        req.end(JSON.stringify({ csr: '' }));
      });
      assert.equal(plain.status, 403);
      assert.match(plain.body, /renewal needs mutual TLS with the current certificate/);

      // A certificate from another CA, for the same key.
      const stranger = makeTestCa(swtpm.tempDir('renew-stranger'), 'Stranger');
      const foreign = await stranger.issue(await tpm.loadKey(DEVICE), 'device-42');
      const renewal = (certificate: string, at: string) =>
        renewEnrollment({
          server: at,
          key: DEVICE,
          tcti: swtpm.tcti,
          certificate,
          subject: 'CN=device-42',
          ca: tls.cert,
        });
      await assert.rejects(renewal(foreign.pem, server), {
        code: 'ERR_ENROLLMENT_REFUSED',
        message: /the presented certificate is not this CA's/,
      });
      const issued = await enroll({ ...device(), server, ca: tls.cert });
      const strict = await serveTls({ renewal: 'attestation' });
      await assert.rejects(renewal(issued.certificate + issued.chain, strict), {
        code: 'ERR_ENROLLMENT_REFUSED',
        message: /renews by a fresh attestation: enroll again/,
      });
    });
  });

  describe('refusals, each with its reason', () => {
    it('an EK outside the roots', async () => {
      const stranger = makeTestCa(swtpm.tempDir('stranger'), 'Stranger');
      const server = await serve({ ekRoots: readFileSync(stranger.root, 'utf8') });
      await assert.rejects(enroll({ ...device(), server }), {
        code: 'ERR_ENROLLMENT_REFUSED',
        message: /ek-certificate/,
      });
    });

    it("another TPM's EK certificate carried along: the policy sees only the EK activation proves", async () => {
      // A victim TPM from the same maker, in the inventory; its EK certificate is public.
      const victim = manufacture(path.join(swtpm.tempDir('victim'), 'state'), swtpm.ekCa.dir);
      const victimEk = pem('CERTIFICATE', victim['ek-rsa2048.crt']!);
      const inventory = inventoryPolicy(`${new X509Certificate(victimEk).fingerprint256} CN=victim\n`);
      const shown: string[][] = [];
      const server = await serve({
        allow: (d) => {
          shown.push(d.ekCertificates.map((c) => c.fingerprint256));
          return inventory(d);
        },
      });
      const attestation = structuredClone(
        await attestKey({ key: DEVICE, tcti: swtpm.tcti, ekChain: swtpm.ekCa.intermediate }),
      );
      attestation.ek.certificates.push({ index: '0x01c00012', pem: victimEk });
      const csr = await (await tpm.loadKey(DEVICE)).csr({ subject: 'CN=victim' });
      const answer = await step(server, 'attest', { attestation, csr });
      assert.equal(answer.status, 403);
      assert.match(answer.body.error.message, /its EK certificate is not in the inventory/);
      assert.equal(shown.length, 1);
      assert.ok(!shown[0]!.includes(new X509Certificate(victimEk).fingerprint256), 'the carried EK is not shown');
      assert.equal(shown[0]!.length, 1, 'only the EK the challenge is encrypted to');
    });

    it('alternative names the inventory does not give', async () => {
      const attestation = await attestKey({ key: DEVICE, tcti: swtpm.tcti, ekChain: swtpm.ekCa.intermediate });
      const prints = attestation.ek.certificates.map((ek) => new X509Certificate(ek.pem).fingerprint256);
      const server = await serve({ allow: inventoryPolicy(prints.map((p) => `${p} CN=device-42`).join('\n')) });
      const key = await tpm.loadKey(DEVICE);
      const named = await key.csr({ subject: 'CN=device-42', subjectAltNames: ['dns:bank.example.com'] });
      const answer = await step(server, 'attest', { attestation, csr: named });
      assert.equal(answer.status, 403);
      assert.match(answer.body.error.message, /the inventory gives no subject alternative names/);
    });

    it('an imported key: it existed outside the TPM', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const imported = await tpm.importKey(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      const file = path.join(dir, 'imported.pem');
      writeFileSync(file, imported.toPem());
      await assert.rejects(enroll({ ...device({ key: file }), server: await serve() }), {
        code: 'ERR_ENROLLMENT_REFUSED',
        message: /key-attributes/,
      });
    });

    it('a request for another key, a wrong answer, an expired ticket, a device the policy refuses', async () => {
      const server = await serve();
      const attestation = await attestKey({ key: DEVICE, tcti: swtpm.tcti, ekChain: swtpm.ekCa.intermediate });
      const other = await tpm.createKey({ alg: 'ES256' });
      const otherCsr = await other.csr({ subject: 'CN=device-42' });
      const wrongKey = await step(server, 'attest', { attestation, csr: otherCsr });
      assert.equal(wrongKey.status, 403);
      assert.match(wrongKey.body.error.message, /the csr is not for the attested key/);

      const csr = await (await tpm.loadKey(DEVICE)).csr({ subject: 'CN=device-42' });
      const first = await step(server, 'attest', { attestation, csr });
      const wrong = { format: 'tpm-jwt-activation-response/1', secret: randomBytes(32).toString('base64') };
      const answer = await step(server, 'activate', { attestation, csr, ticket: first.body.ticket, response: wrong });
      assert.equal(answer.status, 403);
      assert.match(answer.body.error.message, /ak-bound/);
      // Another request with the ticket: it is bound to the first.
      const swapped = await step(server, 'activate', { attestation, csr: otherCsr, ticket: first.body.ticket });
      assert.match(swapped.body.error.message, /made for another attestation or request/);

      const hasty = await serve({ ticketLifetimeSeconds: 0 });
      const expiring = await step(hasty, 'attest', { attestation, csr });
      const response = await activateCredential(expiring.body.challenge, { tcti: swtpm.tcti });
      const expired = await step(hasty, 'activate', { attestation, csr, ticket: expiring.body.ticket, response });
      assert.equal(expired.status, 403);
      assert.match(expired.body.error.message, /expired/);

      const seen: string[] = [];
      const strict = await serve({
        allow: (d) => {
          seen.push(d.ekCertificates.map((c) => c.serialNumber).join(','));
          return 'not in the inventory';
        },
      });
      await assert.rejects(enroll({ ...device(), server: strict }), {
        code: 'ERR_ENROLLMENT_REFUSED',
        message: /the policy refuses this device: not in the inventory/,
      });
      assert.ok(seen.length > 0 && seen.every((serials) => serials !== ''), 'the policy saw the EK certificates');
    });

    it('malformed bodies and methods: 400, 404, 405, 413', async () => {
      const server = await serve();
      assert.equal((await fetch(`${server}/attest`, { method: 'POST', body: 'not json' })).status, 400);
      assert.equal((await fetch(`${server}/attest`, { method: 'POST', body: '{}' })).status, 400);
      assert.equal((await fetch(`${server}/other`, { method: 'POST', body: '{}' })).status, 404);
      assert.equal((await fetch(`${server}/attest`)).status, 405);
      const huge = JSON.stringify({ attestation: 'x'.repeat(400_000) });
      assert.equal((await fetch(`${server}/attest`, { method: 'POST', body: huge })).status, 413);
    });
  });
});
