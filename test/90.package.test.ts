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
    for (const name of [
      'Tpm',
      'TpmKey',
      'TpmSigner',
      'SoftwareSigner',
      'TpmJwtError',
      'ALGORITHMS',
      'attestKey',
      'activateCredential',
      'verifyAttestation',
      'createActivationChallenge',
    ]) {
      assert.ok(name in pkg, name);
    }
    for (const name of ['encode', 'decode', 'decodeHeader', 'Credentials', 'OnDemandCredentials']) {
      assert.ok(name in pkg.jwt, `jwt.${name}`);
    }
  });

  it('loads neither google-auth-library nor the addon for JWT-only use of the root entry', () => {
    // Both are CommonJS (the addon through require), so the CommonJS cache shows them.
    const script = `
      import { createRequire } from 'node:module';
      import { generateKeyPairSync } from 'node:crypto';
      import { jwt, SoftwareSigner } from 'tpm-jwt';
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const signer = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      const token = await jwt.encode(signer, { iss: 'a' });
      const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
      console.log(JSON.stringify({
        alg: jwt.decodeHeader(token).alg,
        google: loaded.filter((file) => file.includes('google-auth-library')).length,
        addon: loaded.filter((file) => file.endsWith('.node')).length,
      }));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(result.stdout), { alg: 'ES256', google: 0, addon: 0 }, result.stderr);
    const google = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { TpmAuthClient } from 'tpm-jwt/google'; console.log(typeof TpmAuthClient)",
      ],
      { encoding: 'utf8' },
    );
    assert.equal(google.stdout.trim(), 'function', google.stderr);
  });

  it('tpm-jwt/testing is its own entry point', () => {
    const script = `
      import { startChipRelay, startSoftwareTpm, CHIP_PROFILES } from 'tpm-jwt/testing';
      console.log(JSON.stringify([typeof startSoftwareTpm, typeof startChipRelay, Object.keys(CHIP_PROFILES)]));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(
      JSON.parse(result.stdout),
      ['function', 'function', ['discrete-spi', 'fast-firmware']],
      result.stderr,
    );
  });

  it('tpm-jwt/metadata loads google-auth-library only for the wif mode, not on import', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { startMetadataServer } from 'tpm-jwt/metadata';
      const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
      console.log(JSON.stringify({
        start: typeof startMetadataServer,
        google: loaded.filter((file) => file.includes('google-auth-library')).length,
      }));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(result.stdout), { start: 'function', google: 0 }, result.stderr);
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
