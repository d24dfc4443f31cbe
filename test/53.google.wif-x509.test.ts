/**
 * Workload Identity Federation with X.509 certificates, the TPM key as the certificate's:
 * wif-config --x509 writes Google's files from a certificate a CA issued for the key's
 * CSR, and the client, the metadata server and print-access-token exchange the
 * certificate chain at a stand-in for the mTLS STS. The stand-in asks for the client
 * certificate on the TLS connection, checks it chains to the provider's trust anchor and
 * is the subject token's first certificate, and takes the subject from its CN.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';

import { TpmAuthClient, TpmIdentityPoolClient } from '../lib/google/index.js';
import { mtlsEndpoint } from '../lib/google/mtls-endpoint.js';
import {
  federatedAccessToken,
  generatedIdToken,
  openWifIdentity,
  readWifConfiguration,
  wifClient,
} from '../lib/google/wif-client.js';
import { TpmSigner, type Tpm, type TpmKey } from '../lib/index.js';
import { startMetadataServer } from '../lib/metadata/index.js';
import { assertFails, cli, spawnCli } from './helpers/cli.js';
import { overlayEnv } from './helpers/env.js';
import { startFakeSts, type FakeSts } from './helpers/fake-sts.js';
import { loopbackTls, type LoopbackTls } from './helpers/loopback-tls.js';
import { useSwtpm } from './helpers/swtpm.js';
import { makeTestCa, type TestCa } from './helpers/test-ca.js';

const run = promisify(execFile);
const AUDIENCE =
  '//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/devices/providers/fleet-ca';
const EMAIL = 'device-reader@p1.iam.gserviceaccount.com';
const HANDLE = '0x81008701';

describe('53 X.509 Workload Identity Federation with the TPM key', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;
  let ca: TestCa;
  let sts: FakeSts;
  let stsTls: LoopbackTls;
  /** The stand-in's certificate as a file, for NODE_EXTRA_CA_CERTS. */
  let stsCaFile: string;
  let device: { key: TpmKey; file: string };
  let restoreEnv: () => void;

  /** wif-config --x509 for `device` into `outDir`, pointed at the stand-in. */
  async function wifConfig(outDir: string, extra: string[] = []) {
    const result = await cli([
      ...['wif-config', '--x509', '--key', HANDLE, '--cert', device.file, '--chain', ca.intermediate],
      ...['--trust-anchor', ca.root, '--project-number', '123456', '--pool', 'devices', '--provider', 'fleet-ca'],
      ...['--service-account', EMAIL, '--out-dir', outDir, '--tcti', swtpm.tcti, '--token-url', sts.tokenUrl],
      ...extra,
    ]);
    assert.equal(result.code, 0, result.stderr);
    // The impersonation endpoint is Google's in what wif-config writes: here, the stand-in's.
    const file = path.join(outDir, 'credential-configuration.json');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    config.service_account_impersonation_url = config.service_account_impersonation_url.replace(
      'https://iamcredentials.googleapis.com',
      sts.iamUrl,
    );
    writeFileSync(file, JSON.stringify(config));
    return { file, config, result };
  }

  before(async () => {
    dir = swtpm.tempDir('wif-x509');
    ca = makeTestCa(dir);
    tpm = await swtpm.openTpm();
    const key = await tpm.createKey({ alg: 'ES256', persist: Number(HANDLE) });
    swtpm.cleanup(() => tpm.evict(Number(HANDLE)));
    device = { key, file: (await ca.issue(key, 'device-42')).file };
    stsTls = loopbackTls(dir, 'sts');
    stsCaFile = path.join(dir, 'sts-ca.pem');
    writeFileSync(stsCaFile, stsTls.cert);
    sts = await startFakeSts({ audience: AUDIENCE, x509: { tls: stsTls, trustAnchor: readFileSync(ca.root, 'utf8') } });
    swtpm.cleanup(() => sts.close());
    restoreEnv = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' });
  });
  after(() => restoreEnv?.());

  it("wif-config --x509 writes Google's credential and certificate configurations and the trust store", async () => {
    const out = path.join(dir, 'config');
    const { config, result } = await wifConfig(out);
    assert.equal(config.type, 'external_account');
    assert.equal(config.audience, AUDIENCE);
    assert.equal(config.subject_token_type, 'urn:ietf:params:oauth:token-type:mtls');
    assert.equal(config.token_url, sts.tokenUrl);
    assert.deepEqual(config.credential_source, {
      certificate: {
        certificate_config_location: path.join(out, 'certificate-config.json'),
        trust_chain_path: ca.intermediate,
      },
    });
    const certificateConfig = JSON.parse(readFileSync(path.join(out, 'certificate-config.json'), 'utf8'));
    assert.deepEqual(certificateConfig, {
      cert_configs: { workload: { cert_path: device.file, tpm: { key: HANDLE, tcti: swtpm.tcti } } },
    });
    const trustStore = readFileSync(path.join(out, 'trust-store.yaml'), 'utf8');
    assert.match(trustStore, /^trustStore:\n {2}trustAnchors:\n {2}- pemCertificate: "-----BEGIN CERTIFICATE-----\\n/);
    assert.ok(trustStore.includes(JSON.stringify(readFileSync(ca.root, 'utf8').trim())));
    for (const name of ['credential-configuration.json', 'certificate-config.json', 'trust-store.yaml']) {
      assert.equal(statSync(path.join(out, name)).mode & 0o777, 0o600, name);
    }
    const principal =
      'principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/devices/subject/device-42';
    assert.match(result.stdout, /providers create-x509 fleet-ca .*--trust-store-config-path=\S+trust-store\.yaml/);
    assert.match(result.stdout, /--attribute-mapping=google\.subject=assertion\.subject\.dn\.cn/);
    assert.ok(result.stdout.includes(`--member=${principal} --role=roles/iam.workloadIdentityUser`));

    // Google's default endpoint is the mTLS one; existing files are kept without --force.
    const again = await cli([
      ...['wif-config', '--x509', '--key', HANDLE, '--cert', device.file, '--trust-anchor', ca.root],
      ...['--project-number', '123456', '--pool', 'devices', '--provider', 'fleet-ca', '--out-dir', out],
      ...['--tcti', swtpm.tcti],
    ]);
    assertFails(again, 1, 'ERR_INVALID_ARGUMENT');
    const fresh = path.join(dir, 'config-default');
    const defaults = await cli([
      ...['wif-config', '--x509', '--key', HANDLE, '--cert', device.file, '--trust-anchor', ca.root],
      ...['--intermediate', ca.intermediate, '--project-number', '123456', '--pool', 'devices'],
      ...['--provider', 'fleet-ca', '--out-dir', fresh, '--tcti', swtpm.tcti],
    ]);
    assert.equal(defaults.code, 0, defaults.stderr);
    const written = JSON.parse(readFileSync(path.join(fresh, 'credential-configuration.json'), 'utf8'));
    assert.equal(written.token_url, 'https://sts.mtls.googleapis.com/v1/token');
    assert.equal(written.service_account_impersonation_url, undefined);
    assert.match(readFileSync(path.join(fresh, 'trust-store.yaml'), 'utf8'), /\n {2}intermediateCas:\n {2}- pem/);
  });

  it('wif-config --x509 refuses a certificate STS would refuse, and flags of the other flavour', async () => {
    const other = await tpm.createKey({ alg: 'ES256' });
    const otherCert = (await ca.issue(other, 'other-key')).file;
    const base = ['wif-config', '--x509', '--key', HANDLE, '--project-number', '1', '--pool', 'devices'];
    const rest = ['--provider', 'fleet-ca', '--tcti', swtpm.tcti, '--out-dir', path.join(dir, 'refused')];
    const refused = await cli([...base, '--cert', otherCert, '--trust-anchor', ca.root, ...rest]);
    assertFails(refused, 1, 'ERR_INVALID_ARGUMENT');
    assert.match(refused.stderr, /is not a certificate for the key/);
    // The root alone does not reach a certificate the intermediate issued.
    const unchained = await cli([...base, '--cert', device.file, '--trust-anchor', ca.root, ...rest]);
    assertFails(unchained, 1, 'ERR_INVALID_ARGUMENT');
    assert.match(unchained.stderr, /does not chain to the trust anchor/);
    assertFails(await cli([...base, '--cert', device.file, '--issuer', 'https://x', ...rest]), 2, 'USAGE');
    assertFails(await cli([...base.filter((f) => f !== '--x509'), '--cert', device.file, ...rest]), 2, 'USAGE');
  });

  it('TpmIdentityPoolClient exchanges the chain over mutual TLS', async () => {
    const { file } = await wifConfig(path.join(dir, 'client'));
    const client = await TpmIdentityPoolClient.fromCredentialConfiguration(file, { ca: stsTls.cert });
    try {
      const before = sts.exchanged.length;
      const { token, expiry } = await federatedAccessToken(client);
      assert.ok(sts.issued.has(token), 'an impersonated token from the stand-in');
      assert.ok(expiry.getTime() > Date.now());
      assert.equal(sts.exchanged.length, before + 1);
      assert.equal(sts.exchanged.at(-1)!.sub, 'device-42', 'the subject is the certificate CN');
      assert.equal(sts.impersonated.at(-1), EMAIL);
      // The subject token: the certificate, then the intermediate, base64 DER.
      const chain = JSON.parse(sts.subjectTokens.at(-1)!) as string[];
      assert.deepEqual(
        chain.map((der) => new X509Certificate(Buffer.from(der, 'base64')).subject),
        ['CN=device-42', 'CN=Fleet Issuing'],
      );
    } finally {
      await client.close();
    }
  });

  it("an identity's clients share one connection (one TPM signature); a renewed certificate is used next", async () => {
    const out = path.join(dir, 'identity');
    const { file } = await wifConfig(out);
    // A certificate of its own, so the stand-in's count of connections is this test's.
    const certPath = path.join(out, 'device.pem');
    const first = await ca.issue(device.key, 'device-42-identity');
    writeFileSync(certPath, first.pem);
    const certificateConfig = path.join(out, 'certificate-config.json');
    const config = JSON.parse(readFileSync(certificateConfig, 'utf8'));
    config.cert_configs.workload.cert_path = certPath;
    writeFileSync(certificateConfig, JSON.stringify(config));
    const configuration = await readWifConfiguration(file);
    const identity = await openWifIdentity(configuration, { ca: stsTls.cert });
    try {
      // The access token (STS, then impersonation) and an ID token (the federated token
      // calls generateIdToken), as the metadata server asks for them: one TLS connection.
      await federatedAccessToken(wifClient(configuration, identity));
      const url = `${sts.iamUrl}/v1/projects/-/serviceAccounts/${EMAIL}:generateIdToken`;
      await generatedIdToken(
        wifClient(configuration, identity, { impersonate: false }),
        url,
        'https://svc.example.com',
      );
      const fingerprint = new X509Certificate(first.pem).fingerprint256;
      assert.equal(sts.connections.get(fingerprint)?.size, 1, 'one handshake for three requests');

      const renewed = await ca.issue(device.key, 'device-42-renewed');
      writeFileSync(certPath, renewed.pem);
      await federatedAccessToken(wifClient(configuration, identity));
      assert.equal(sts.exchanged.at(-1)!.sub, 'device-42-renewed');
      const leaf = JSON.parse(sts.subjectTokens.at(-1)!)[0] as string;
      assert.ok(new X509Certificate(renewed.pem).raw.equals(Buffer.from(leaf, 'base64')));
      assert.equal(sts.connections.get(new X509Certificate(renewed.pem).fingerprint256)?.size, 1);
    } finally {
      await identity.close();
    }
  });

  it('serve-metadata --mode wif: Node and Python ADC get the federated token through it', async () => {
    const { file } = await wifConfig(path.join(dir, 'metadata'));
    const server = await startMetadataServer({
      mode: 'wif',
      credentialConfiguration: file,
      ca: stsTls.cert,
      host: '127.0.0.1',
      port: 0,
    });
    try {
      const host = server.host!;
      const home = swtpm.tempDir('x509-adc-home');
      const node = await run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "import { GoogleAuth } from 'google-auth-library';" +
            'const auth = new GoogleAuth(); const client = await auth.getClient();' +
            'process.stdout.write(JSON.stringify({ token: (await client.getAccessToken()).token,' +
            ' email: (await auth.getCredentials()).client_email }));',
        ],
        { env: { ...process.env, HOME: home, GOOGLE_APPLICATION_CREDENTIALS: '', GCE_METADATA_HOST: host } },
      );
      const found = JSON.parse(node.stdout);
      assert.equal(found.email, EMAIL);
      assert.ok(sts.issued.has(found.token), 'the token the stand-in issued');
      const python = await run(
        '/usr/bin/python3',
        [
          '-c',
          'import google.auth, google.auth.transport.requests\n' +
            'c, _ = google.auth.default()\n' +
            'c.refresh(google.auth.transport.requests.Request())\n' +
            'print(c.token)',
        ],
        { env: { PATH: process.env['PATH']!, HOME: home, GCE_METADATA_ROOT: host, GCE_METADATA_IP: host } },
      );
      assert.ok(sts.issued.has(python.stdout.trim()), 'Python got the same kind of token');
    } finally {
      await server.close();
    }
  });

  it('print-access-token --credentials prints the federated token (STS trusted via NODE_EXTRA_CA_CERTS)', async () => {
    const { file } = await wifConfig(path.join(dir, 'print'));
    const result = await spawnCli(['print-access-token', '--credentials', file, '--scope', 'https://scope.example'], {
      NODE_EXTRA_CA_CERTS: stsCaFile,
    });
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout);
    assert.ok(sts.issued.has(printed.access_token));
    assert.equal(printed.token_type, 'Bearer');
    assert.equal(sts.scopes.at(-1), 'https://scope.example');
    assertFails(await cli(['print-access-token', '--credentials', file, '--email', 'x@y']), 2, 'USAGE');
  });

  it('refusals: an untrusted STS, a certificate of another key, an expired one, one from another CA', async () => {
    const out = path.join(dir, 'refusals');
    const { file } = await wifConfig(out);
    // The system's roots do not hold the stand-in's certificate.
    const untrusted = await TpmIdentityPoolClient.fromCredentialConfiguration(file);
    try {
      await assert.rejects(federatedAccessToken(untrusted), { code: 'ERR_TLS', message: /self-signed certificate/ });
    } finally {
      await untrusted.close();
    }
    const certificateConfig = path.join(out, 'certificate-config.json');
    const config = JSON.parse(readFileSync(certificateConfig, 'utf8'));
    const useCertificate = async (certPath: string) => {
      config.cert_configs.workload.cert_path = certPath;
      writeFileSync(certificateConfig, JSON.stringify(config));
      const client = await TpmIdentityPoolClient.fromCredentialConfiguration(file, { ca: stsTls.cert });
      try {
        return await federatedAccessToken(client);
      } finally {
        await client.close();
      }
    };
    const other = await ca.issue(await tpm.createKey({ alg: 'ES256' }), 'another-key');
    await assert.rejects(useCertificate(other.file), { code: 'ERR_INVALID_ARGUMENT', message: /not for the TPM key/ });
    const expired = await ca.issue(device.key, 'expired', { start: '20200101000000Z', end: '20200102000000Z' });
    await assert.rejects(useCertificate(expired.file), { code: 'ERR_INVALID_ARGUMENT', message: /renew it/ });
    // A CA the provider does not trust: STS refuses, in its own words.
    const stranger = makeTestCa(swtpm.tempDir('stranger-ca'), 'Stranger');
    const foreign = await stranger.issue(device.key, 'device-42');
    await assert.rejects(useCertificate(foreign.file), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_TOKEN_EXCHANGE');
      assert.match(err.message, /client certificate does not verify/);
      return true;
    });
    // The next request, with the right certificate, works.
    assert.ok(sts.issued.has((await useCertificate(device.file)).token));
  });

  describe('Google APIs over mutual TLS (certificate-based access)', () => {
    /** A stand-in for an mTLS endpoint: the token endpoint and an API, each answering only a verified client. */
    async function mtlsGoogle() {
      const seen: { path: string; fingerprint: string; socket: unknown }[] = [];
      const server = createHttpsServer(
        { key: stsTls.key, cert: stsTls.cert, ca: readFileSync(ca.root, 'utf8'), requestCert: true },
        (req, res) => {
          const socket = req.socket as TLSSocket;
          seen.push({ path: req.url!, fingerprint: socket.getPeerCertificate().fingerprint256, socket });
          res.setHeader('content-type', 'application/json');
          if (req.url === '/token') res.end(JSON.stringify({ access_token: 'ya29.mtls', expires_in: 3600 }));
          else res.end(JSON.stringify({ items: [{ name: 'b1' }], auth: req.headers.authorization }));
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const close = () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      return { origin, seen, close };
    }
    const certificate = () => readFileSync(device.file, 'utf8') + readFileSync(ca.intermediate, 'utf8');

    it("a service's mTLS endpoint is SERVICE.mtls.UNIVERSE", () => {
      assert.equal(
        mtlsEndpoint('https://storage.googleapis.com/storage/v1/b?x=1', 'googleapis.com'),
        'https://storage.mtls.googleapis.com/storage/v1/b?x=1',
      );
      assert.equal(
        mtlsEndpoint('https://oauth2.example.net/token', 'example.net'),
        'https://oauth2.mtls.example.net/token',
      );
      for (const unchanged of [
        'https://storage.mtls.googleapis.com/b',
        'https://storage.googleapis.com:8443/b',
        'https://example.com/b',
        'http://storage.googleapis.com/b',
      ]) {
        assert.equal(mtlsEndpoint(unchanged, 'googleapis.com'), unchanged);
      }
    });

    it('TpmAuthClient: the exchange and the API request present the TPM key, on one connection', async () => {
      const google = await mtlsGoogle();
      const client = new TpmAuthClient({
        signer: TpmSigner.fromKey(device.key),
        email: EMAIL,
        mode: 'oauth2',
        tokenUrl: `${google.origin}/token`,
        mtls: { certificate: certificate(), ca: stsTls.cert },
      });
      try {
        const response = await client.request<{ items: { name: string }[]; auth: string }>({
          url: `${google.origin}/storage/v1/b`,
        });
        assert.deepEqual(
          response.data.items.map((b) => b.name),
          ['b1'],
        );
        assert.equal(response.data.auth, 'Bearer ya29.mtls');
        const fingerprint = new X509Certificate(readFileSync(device.file)).fingerprint256;
        assert.deepEqual(
          google.seen.map((s) => [s.path, s.fingerprint]),
          [
            ['/token', fingerprint],
            ['/storage/v1/b', fingerprint],
          ],
        );
        assert.equal(new Set(google.seen.map((s) => s.socket)).size, 1, 'one handshake, one TPM signature');
      } finally {
        await client.close();
        await google.close();
      }
    });

    it('the metadata server exchanges over mutual TLS with --mtls-cert (mtls)', async () => {
      const google = await mtlsGoogle();
      const server = await startMetadataServer({
        signer: TpmSigner.fromKey(device.key),
        email: EMAIL,
        tokenUrl: `${google.origin}/token`,
        mtls: { certificate: certificate(), ca: stsTls.cert },
        host: '127.0.0.1',
        port: 0,
      });
      try {
        const answer = await fetch(`${server.url}/computeMetadata/v1/instance/service-accounts/default/token`, {
          headers: { 'Metadata-Flavor': 'Google' },
        });
        assert.equal(((await answer.json()) as { access_token: string }).access_token, 'ya29.mtls');
        assert.equal(google.seen.at(-1)!.fingerprint, new X509Certificate(readFileSync(device.file)).fingerprint256);
      } finally {
        await server.close();
        await google.close();
      }
    });
  });
});
