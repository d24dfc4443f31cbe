import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { OAuth2Client } from 'google-auth-library';

import { jwt, Tpm, TpmSigner } from '../lib/index.js';
import { serialNumber } from '../lib/tpm/certificate.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const openssl = (...args: string[]) =>
  execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Whether openssl verifies a request's signature: OpenSSL 3.0 says so on stderr, and exits 0 either way. */
function assertRequestVerifies(file: string): void {
  const run = spawnSync('openssl', ['req', '-in', file, '-verify', '-noout'], { encoding: 'utf8' });
  assert.match(run.stderr, /self-signature verify OK/, run.stderr);
}

describe('24 TPM-signed certificates', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;

  before(async () => {
    dir = swtpm.tempDir('cert');
    tpm = await swtpm.openTpm();
  });

  for (const alg of ['RS256', 'ES256'] as const) {
    it(`makes an ${alg} certificate that openssl parses and verifies, for the TPM key`, async () => {
      const key = await tpm.createKey({ alg });
      const pem = await key.certificate({ subject: EMAIL, days: 30 });
      const file = path.join(dir, `${alg}.pem`);
      writeFileSync(file, pem);
      assert.match(openssl('x509', '-in', file, '-noout', '-subject'), new RegExp(`CN = ${EMAIL}`));
      assert.match(openssl('verify', '-CAfile', file, file), /: OK/);

      const x509 = new X509Certificate(pem);
      assert.ok(x509.publicKey.equals(key.publicKey), 'the certificate holds the TPM key');
      assert.ok(x509.verify(key.publicKey), 'node:crypto verifies the TPM signature');
      const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
      assert.ok(days > 29.9 && days < 30.1, `valid for ${days} days`);

      // The TPM's tokens verify against the certificate, as Google verifies them.
      const signer = TpmSigner.fromKey(key, { keyId: 'cert-kid' });
      const now = Math.floor(Date.now() / 1000);
      const token = await jwt.encode(signer, { iss: EMAIL, sub: EMAIL, aud: 'https://x/', iat: now, exp: now + 600 });
      assert.equal((await jwt.decode(token, { certs: pem, audience: 'https://x/' })).sub, EMAIL);
      const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, { 'cert-kid': pem }, 'https://x/');
      assert.equal(ticket.getPayload()?.iss, EMAIL);
    });
  }

  it('tpm-jwt cert prints the certificate for a KEYREF', async () => {
    const key = await tpm.createKey({ alg: 'ES256', persist: 0x81000050 });
    swtpm.cleanup(() => tpm.evict(0x81000050));
    const result = await cli([
      'cert',
      '--key',
      'handle:0x81000050',
      '--subject',
      'cli',
      '--days',
      '7',
      '--tcti',
      swtpm.tcti,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const x509 = new X509Certificate(result.stdout);
    assert.equal(x509.subject, 'CN=cli');
    assert.ok(x509.publicKey.equals(key.publicKey));
    assertFails(await cli(['cert', '--key', '0x81000050', '--subject', 'x', '--days', '0']), 2, 'USAGE');
  });

  it('draws serial numbers that are positive, minimally encoded DER INTEGERs', () => {
    for (let i = 0; i < 10_000; i++) {
      const first = serialNumber()[0]!;
      assert.ok(first >= 0x40 && first <= 0x7f, `serial number starting 0x${first.toString(16)}`);
    }
  });

  it('refuses bad options with ERR_INVALID_ARGUMENT', async () => {
    const key = await tpm.createKey({ alg: 'ES256' });
    for (const options of [{ subject: '' }, { subject: 'x', days: 0 }, { subject: 'x', days: 1.5 }]) {
      await assert.rejects(key.certificate(options), { code: 'ERR_INVALID_ARGUMENT' });
    }
  });

  describe('certification requests (PKCS#10)', () => {
    const SANS = ['dns:device-42.example.com', 'uri:spiffe://example.com/device/42', 'ip:192.0.2.7', 'ip:2001:db8::7'];

    for (const alg of ['RS256', 'ES256'] as const) {
      it(`makes an ${alg} request for the TPM key that openssl verifies, with the names asked`, async () => {
        const key = await tpm.createKey({ alg });
        const file = path.join(dir, `${alg}.csr`);
        writeFileSync(
          file,
          await key.csr({ subject: 'CN=device-42,OU=Fleet\\, EU,O=Example,C=DE', subjectAltNames: SANS }),
        );
        // The TPM's signature over the request, checked with the public key the request holds.
        assertRequestVerifies(file);
        const text = openssl('req', '-in', file, '-noout', '-text', '-nameopt', 'RFC2253');
        assert.match(text, /Subject: CN=device-42,OU=Fleet\\, EU,O=Example,C=DE\n/);
        const names = 'DNS:device-42.example.com, URI:spiffe://example.com/device/42, IP Address:192.0.2.7';
        assert.ok(text.includes(`${names}, IP Address:2001:DB8:0:0:0:0:0:7`), text);
        const publicKey = createPublicKey(openssl('req', '-in', file, '-noout', '-pubkey'));
        assert.ok(publicKey.equals(key.publicKey), 'the request is for the TPM key');
      });
    }

    it('tpm-jwt csr writes the request to --out and keeps an existing file unless --force', async () => {
      const key = await tpm.createKey({ alg: 'ES256', persist: 0x81000051 });
      swtpm.cleanup(() => tpm.evict(0x81000051));
      const out = path.join(dir, 'cli.csr');
      const args = ['csr', '--key', '0x81000051', '--subject', 'CN=cli', '--san', 'dns:cli.example.com', '--out', out];
      const first = await cli([...args, '--tcti', swtpm.tcti]);
      assert.equal(first.code, 0, first.stderr);
      assertRequestVerifies(out);
      assert.match(openssl('req', '-in', out, '-noout', '-subject'), /subject=CN\s?=\s?cli/);
      assert.ok(createPublicKey(openssl('req', '-in', out, '-noout', '-pubkey')).equals(key.publicKey));
      const before = readFileSync(out, 'utf8');
      assertFails(await cli([...args, '--tcti', swtpm.tcti]), 1, 'ERR_INVALID_ARGUMENT');
      assert.equal(readFileSync(out, 'utf8'), before, 'the existing request is kept');
      const forced = await cli([...args, '--force', '--tcti', swtpm.tcti]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.notEqual(readFileSync(out, 'utf8'), before, 'replaced (ECDSA signs with a fresh nonce)');
      assertFails(await cli(['csr', '--key', '0x81000051', '--tcti', swtpm.tcti]), 2, 'USAGE');
    });

    it('refuses a malformed subject or name with ERR_INVALID_ARGUMENT, before the TPM signs', async () => {
      const key = await tpm.createKey({ alg: 'ES256' });
      const bad = [
        { subject: '' },
        { subject: 'device-42' },
        { subject: 'XX=device-42' },
        { subject: 'CN=' },
        { subject: 'CN=a+O=b' },
        { subject: 'C=Deutschland!' },
        { subject: 'CN=x', subjectAltNames: ['device.example.com'] },
        { subject: 'CN=x', subjectAltNames: ['dns:bad name'] },
        { subject: 'CN=x', subjectAltNames: ['ip:300.1.1.1'] },
        { subject: 'CN=x', subjectAltNames: ['uri:not a uri'] },
      ];
      for (const options of bad) {
        await assert.rejects(key.csr(options), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(options));
      }
    });
  });
});
