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

  const run = (command: string, args: string[]) =>
    spawnSync(command, args, { cwd: project, encoding: 'utf8', env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti } });

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
