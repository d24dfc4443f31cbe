/**
 * The package as its users see it: imported by name (through package.json "exports"
 * and the compiled dist/ with its .d.ts), with ESM import and with require().
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';

import * as pkg from 'tpm-jwt';
import type { JwsAlgorithm, Signer, TpmJwtErrorCode } from 'tpm-jwt';

describe('90 package', () => {
  it('exports the public API by name, with types', () => {
    const alg: JwsAlgorithm = 'ES256';
    const code: TpmJwtErrorCode = 'ERR_TPM_CLOSED';
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer: Signer = pkg.SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    assert.equal(signer.algorithm, alg);
    assert.equal(new pkg.TpmJwtError(code, 'x').code, code);
    for (const name of ['Tpm', 'TpmKey', 'TpmSigner', 'SoftwareSigner', 'TpmJwtError', 'ALGORITHMS']) {
      assert.ok(name in pkg, name);
    }
    for (const name of ['encode', 'decode', 'decodeHeader', 'Credentials', 'OnDemandCredentials']) {
      assert.ok(name in pkg.jwt, `jwt.${name}`);
    }
  });

  it('loads with require() as well as import', () => {
    const result = spawnSync(
      process.execPath,
      ['-e', "const p = require('tpm-jwt'); console.log(typeof p.Tpm.open, typeof p.jwt.decode)"],
      { encoding: 'utf8' },
    );
    assert.equal(result.stdout.trim(), 'function function', result.stderr);
  });
});
