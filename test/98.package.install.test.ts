/**
 * The package as a user gets it: `npm pack`, installed into a fresh project as a
 * dependency, built from source (the fallback when no prebuild fits, forced here with
 * --build-from-source; test/release covers the prebuilds), then its CLI and
 * require('tpm-jwt') used there.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { pack } from './helpers/pack.js';
import { useSwtpm } from './helpers/swtpm.js';

describe('98 the packed tarball, installed as a dependency', function () {
  this.timeout(300_000);
  const swtpm = useSwtpm();
  let project: string;
  let tarball: string;

  before(() => {
    project = swtpm.tempDir('consumer');
    let files: string[];
    ({ tarball, files } = pack(project, { prebuilds: false }));
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts') && files.includes('binding.gyp'));
    assert.deepEqual(
      files.filter((f) => /^(test|bench|scripts|build|lib|node_modules)\//.test(f) || f.endsWith('.map')),
      [],
      'no tests, sources or build litter in the tarball',
    );
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
    );
    execFileSync('npm', ['install', tarball, '--no-audit', '--no-fund', '--build-from-source'], {
      cwd: project,
      stdio: 'ignore',
    });
  });

  // The installed package loads its own build: a TPM_JWT_ADDON this run was started
  // with (test:cmake, test:asan) names a build of the checkout, not of the install.
  const { TPM_JWT_ADDON: _, ...outer } = process.env;
  const run = (command: string, args: string[]) =>
    spawnSync(command, args, { cwd: project, encoding: 'utf8', env: { ...outer, TPM2TOOLS_TCTI: swtpm.tcti } });

  it('built the addon during install', () => {
    assert.ok(readdirSync(path.join(project, 'node_modules', 'tpm-jwt', 'build', 'Release')).includes('tpm_jwt.node'));
  });

  it('runs its CLI: keygen, token, verify', () => {
    const keygen = run('npx', ['tpm-jwt', 'keygen', '--alg', 'ES256', '--out', 'key.pem']);
    assert.equal(keygen.status, 0, keygen.stderr);
    writeFileSync(path.join(project, 'pub.pem'), keygen.stdout);
    const token = run('npx', [
      'tpm-jwt',
      'token',
      '--key',
      'key.pem',
      '--email',
      'sa@p.iam.gserviceaccount.com',
      '--audience',
      'https://x/',
    ]);
    assert.equal(token.status, 0, token.stderr);
    const verified = run('npx', [
      'tpm-jwt',
      'verify',
      '--pubkey',
      'pub.pem',
      '--audience',
      'https://x/',
      token.stdout.trim(),
    ]);
    assert.equal(verified.status, 0, verified.stderr);
    assert.equal(JSON.parse(verified.stdout).sub, 'sa@p.iam.gserviceaccount.com');
  });

  it("runs the project's own tests on a manufactured swtpm behind a discrete chip that answers RETRY", () => {
    // docs/testing.md's example, as a project that installed tpm-jwt writes it: nothing from this repo.
    writeFileSync(
      path.join(project, 'chip.test.mjs'),
      `
      import assert from 'node:assert/strict';
      import { test } from 'node:test';
      import { attestKey, TpmSigner, verifyAttestation } from 'tpm-jwt';
      import { startChipRelay, startSoftwareTpm } from 'tpm-jwt/testing';

      test('signs and attests on a simulated chip', async () => {
        const tpm = await startSoftwareTpm({ manufacture: true, key: { alg: 'ES256' } });
        const chip = await startChipRelay({
          tcti: tpm.tcti,
          profile: 'discrete-spi',
          faults: [{ command: 'Sign', nth: 1, rc: 'RETRY' }],
        });
        try {
          const signer = await TpmSigner.open({ key: tpm.key.ref, tcti: chip.tcti });
          assert.equal((await signer.sign(Buffer.from('hello'))).length, 64);
          await signer.close();
          assert.equal(chip.log.filter((r) => r.fault).length, 1);
          assert.ok(chip.tpmTime() >= 150);
          const doc = await attestKey({ tcti: chip.tcti, key: tpm.key.ref, ekChain: tpm.ca.intermediate });
          const verdict = await verifyAttestation(doc, { roots: tpm.ca.root });
          assert.equal(verdict.reasons.find((r) => r.check === 'ek-certificate').ok, true);
        } finally {
          await chip.close();
          await tpm.stop();
        }
      });
    `,
    );
    const tested = run(process.execPath, ['--test', 'chip.test.mjs']);
    assert.equal(tested.status, 0, tested.stdout + tested.stderr);
    assert.match(tested.stdout, /# pass 1/);
  });

  it('loads with require() from CommonJS and with import', () => {
    const cjs = run(process.execPath, [
      '-e',
      "const t = require('tpm-jwt'); console.log(typeof t.Tpm.open, typeof t.jwt.encode)",
    ]);
    assert.equal(cjs.stdout.trim(), 'function function', cjs.stderr);
    // google-auth-library is an optional peer, not installed here: only tpm-jwt/google needs it.
    const google = run(process.execPath, ['-e', "require('tpm-jwt/google')"]);
    assert.notEqual(google.status, 0);
    assert.match(google.stderr, /Cannot find (package|module) 'google-auth-library'/);
    const esm = run(process.execPath, [
      '--input-type=module',
      '-e',
      "import { Tpm } from 'tpm-jwt'; const t = await Tpm.open(); console.log(t.saltKeyName.length); await t.close();",
    ]);
    assert.equal(esm.stdout.trim(), '68', esm.stderr);
  });
});
