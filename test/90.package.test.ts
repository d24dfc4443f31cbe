/**
 * The package as its users see it: imported by name (through package.json "exports"
 * and the compiled dist/ with its .d.ts), with ESM import and with require().
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

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

  it('tpm-jwt/azure is its own entry point, loading neither the addon nor google-auth-library', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { azureAssertionCallback, azureClientAssertion } from 'tpm-jwt/azure';
      const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
      console.log(JSON.stringify({
        exports: [typeof azureAssertionCallback, typeof azureClientAssertion],
        others: loaded.filter((file) => file.endsWith('.node') || file.includes('google-auth-library')),
      }));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(result.stdout), { exports: ['function', 'function'], others: [] }, result.stderr);
  });

  it('tpm-jwt/enroll serves enrollments without the addon or google-auth-library', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-enroll-entry-'));
    try {
      execFileSync(
        'openssl',
        [
          ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
          ...['-subj', '/CN=CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', 'ca.key', '-out', 'ca.pem'],
        ],
        { cwd: dir, stdio: 'ignore' },
      );
      // A request the handler refuses as malformed: the whole server path, short of a TPM's document.
      const script = `
        import { createRequire } from 'node:module';
        import { readFileSync } from 'node:fs';
        import { Readable } from 'node:stream';
        import { certificateAuthority, createEnrollmentHandler } from 'tpm-jwt/enroll';
        const pem = (name) => readFileSync(${JSON.stringify(dir)} + '/' + name, 'utf8');
        const handler = createEnrollmentHandler({
          ekRoots: pem('ca.pem'),
          sealingKey: Buffer.alloc(32, 1),
          ca: certificateAuthority({ certificate: pem('ca.pem'), key: pem('ca.key') }),
          allow: () => true,
        });
        const req = Object.assign(Readable.from([Buffer.from('{}')]), { url: '/v1/enroll/attest', method: 'POST' });
        const status = await new Promise((resolve) => {
          let code = 0;
          handler(req, { setHeader() {}, writeHead: (c) => (code = c), end: () => resolve(code) });
        });
        const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
        console.log(JSON.stringify({
          status,
          others: loaded.filter((file) => file.endsWith('.node') || file.includes('google-auth-library')),
        }));`;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      assert.deepEqual(JSON.parse(result.stdout), { status: 400, others: [] }, result.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tpm-jwt/tls is its own entry point: the root does not load node:https for it', () => {
    const script = `
      const { TpmTlsAgent, TpmTlsSocket } = await import('tpm-jwt/tls');
      console.log(JSON.stringify([typeof TpmTlsAgent, typeof TpmTlsSocket]));`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(result.stdout), ['function', 'function'], result.stderr);
    const root = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('tpm-jwt'); console.log('TpmTlsAgent' in m)"],
      { encoding: 'utf8' },
    );
    assert.equal(root.stdout.trim(), 'false', root.stderr);
  });

  it('loads with require() as well as import', () => {
    const result = spawnSync(
      process.execPath,
      ['-e', "const p = require('tpm-jwt'); console.log(typeof p.Tpm.open, typeof p.jwt.decode)"],
      { encoding: 'utf8' },
    );
    assert.equal(result.stdout.trim(), 'function function', result.stderr);
  });

  describe('the prepack check', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const check = path.join(root, 'scripts/check-prebuilds');
    let dir: string;

    /** A package in `dir` whose prepack is the check; `prebuilds` holds each prebuild's ELF machine. */
    function packageWith(prebuilds: Record<string, number>) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      const scripts = { prepack: `${check} .`, prepare: 'true' };
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', scripts }));
      for (const [arch, machine] of Object.entries(prebuilds)) {
        const file = path.join(dir, `prebuilds/linux-${arch}/tpm-jwt.napi.glibc.node`);
        mkdirSync(path.dirname(file), { recursive: true });
        copyFileSync(path.join(root, 'build/Release/tpm_jwt.node'), file);
        const elf = readFileSync(file);
        elf[18] = machine;
        writeFileSync(file, elf);
      }
    }
    const npmPack = (env: NodeJS.ProcessEnv = {}) =>
      spawnSync('npm', ['pack', '--dry-run'], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });

    before(() => (dir = path.join(mkdtempSync(path.join(tmpdir(), 'tpm-jwt-prepack-')), 'p')));
    after(() => rmSync(path.dirname(dir), { recursive: true, force: true }));

    it("is the package's prepack script", () => {
      const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
      assert.equal(manifest.scripts.prepack, 'scripts/check-prebuilds');
    });

    it('refuses to pack without both prebuilds, each for its architecture, and says what to run', () => {
      for (const prebuilds of [{}, { x64: 0x3e }, { x64: 0x3e, arm64: 0x3e }]) {
        packageWith(prebuilds);
        const result = npmPack();
        assert.notEqual(result.status, 0, JSON.stringify(prebuilds));
        assert.match(result.stderr, /prebuilds\/linux-arm64\/tpm-jwt\.napi\.glibc\.node/);
        assert.match(result.stderr, /npm run build:prebuilds/);
      }
      packageWith({ x64: 0x3e, arm64: 0xb7 });
      assert.equal(npmPack().status, 0);
    });

    it('packs without prebuilds when told to', () => {
      packageWith({});
      assert.equal(npmPack({ TPM_JWT_PACK_WITHOUT_PREBUILDS: '1' }).status, 0);
    });

    it('never stops a git-dependency install, which runs prepare but not prepack', function () {
      this.timeout(120_000);
      packageWith({});
      const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, stdio: 'ignore' });
      git('init', '-q');
      git('add', '.');
      git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'p');
      const consumer = path.join(path.dirname(dir), 'consumer');
      mkdirSync(consumer);
      writeFileSync(
        path.join(consumer, 'package.json'),
        JSON.stringify({ name: 'c', version: '1.0.0', private: true }),
      );
      execFileSync('npm', ['install', '--no-audit', '--no-fund', `git+file://${dir}`], {
        cwd: consumer,
        stdio: 'ignore',
      });
      assert.equal(JSON.parse(readFileSync(path.join(consumer, 'node_modules/p/package.json'), 'utf8')).name, 'p');
    });
  });
});
