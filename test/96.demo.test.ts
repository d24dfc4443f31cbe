import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { jwtVerify } from 'jose';

const DEMO = fileURLToPath(new URL('../scripts/demo.ts', import.meta.url));

describe('96 npm run demo', () => {
  it('runs on its own embedded swtpm and prints a certificate and a token that verifies with it', async function () {
    this.timeout(60_000);
    const env = { ...process.env };
    for (const name of ['TPM2TOOLS_TCTI', 'TSS2_TCTI', 'TPM_JWT_TEST_TCTI']) delete env[name];
    const run = spawnSync(process.execPath, ['--import', 'tsx', DEMO], { env, encoding: 'utf8', timeout: 50_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /starting a private swtpm/);
    const certificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(run.stdout)![0];
    const token = /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/m.exec(run.stdout)![0];
    const x509 = new X509Certificate(certificate);
    assert.ok(x509.verify(x509.publicKey), 'self-signed');
    const { payload } = await jwtVerify(token, x509.publicKey, { audience: 'https://pubsub.googleapis.com/' });
    assert.equal(payload.iss, 'demo@tpm-jwt.iam.gserviceaccount.com');
    assert.match(run.stdout, /"aud": "https:\/\/pubsub.googleapis.com\/"/);
  });
});
