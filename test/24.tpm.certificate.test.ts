import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { OAuth2Client } from 'google-auth-library';

import { jwt, Tpm, TpmSigner } from '../lib/index.js';
import { serialNumber } from '../lib/tpm/certificate.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const openssl = (...args: string[]) =>
  execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

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
});
