import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { Tpm } from '../lib/index.js';
import { jwkThumbprint } from '../lib/jwk.js';
import { encodeKeyFile } from '../lib/tpm/key-file.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { assertFails, cli, spawnCli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

describe('80 CLI', () => {
  const swtpm = useSwtpm();
  let dir: string;
  const withTcti = (...args: string[]) => cli([...args, '--tcti', swtpm.tcti]);

  before(() => {
    dir = swtpm.tempDir('cli');
  });

  it('keygen --persist makes a key tpm2_readpublic sees, and prints its public key', async () => {
    const result = await withTcti('keygen', '--alg', 'ES256', '--persist', '0x81000010');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /created ES256 key at 0x81000010/);
    const file = path.join(dir, 'pub.pem');
    tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000010', '-f', 'pem', '-o', file);
    assert.equal(result.stdout, readFileSync(file, 'utf8'));
  });

  it('keygen refuses an occupied handle without --force (exit 1, one line)', async () => {
    assertFails(await withTcti('keygen', '--alg', 'RS256', '--persist', '0x81000010'), 1, 'ERR_TPM_HANDLE_IN_USE');
  });

  it('keygen --force --json replaces it; --auth-env sets the key auth', async () => {
    const result = await cli(
      ['keygen', '--alg', 'RS256', '--persist', '81000010', '--force', '--json', '--auth-env', 'K'],
      { TPM2TOOLS_TCTI: swtpm.tcti, K: 'key-secret' },
    );
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout);
    assert.equal(out.handle, '0x81000010');
    assert.equal(out.algorithm, 'RS256');
    // The auth value is really on the key: signing needs it.
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    try {
      const key = await tpm.loadKey(0x81000010, { auth: 'key-secret' });
      const data = Buffer.from('auth');
      assert.ok(verify('sha256', data, createPublicKey(out.publicKeyPem), await key.sign(data)));
      const wrong = await tpm.loadKey(0x81000010, { auth: 'wrong' });
      await assert.rejects(wrong.sign(data), { code: 'ERR_TPM_AUTH_FAIL' });
    } finally {
      await tpm.close();
    }
  });

  it('pubkey prints PEM, JWK and JWKS (kid: --kid or the RFC 7638 thumbprint)', async () => {
    const pem = await withTcti('pubkey', '--key', 'handle:0x81000010');
    assert.equal(pem.code, 0, pem.stderr);
    const publicKey = createPublicKey(pem.stdout);

    const jwk = JSON.parse((await withTcti('pubkey', '--key', '0x81000010', '--format', 'jwk')).stdout);
    assert.equal(jwk.kty, 'RSA');
    assert.equal(jwk.alg, 'RS256');
    assert.equal(jwk.use, 'sig');
    assert.equal(jwk.kid, jwkThumbprint(publicKey.export({ format: 'jwk' })));
    assert.equal(createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }), pem.stdout);

    const jwks = JSON.parse(
      (await withTcti('pubkey', '--key', '0x81000010', '--format', 'jwks', '--kid', 'k1', '--alg', 'PS256')).stdout,
    );
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0].kid, 'k1');
    assert.equal(jwks.keys[0].alg, 'PS256');
  });

  it('inspect shows algorithm, attributes and handle (text and --json)', async () => {
    const text = await withTcti('inspect', '--key', '0x81000010');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /handle: +0x81000010/);
    assert.doesNotMatch(text.stderr, /warning/, 'a key made in the TPM gets no warning');
    assert.match(text.stdout, /fixedTPM\|.*fixedParent\|sensitiveDataOrigin\|userWithAuth\|.*sign/);
    const report = JSON.parse((await withTcti('inspect', '--key', '0x81000010', '--json')).stdout);
    assert.equal(report.keyType, 'RSA');
    assert.equal(report.bits, 2048);
    assert.deepEqual(report.algorithms, ['RS256', 'PS256']);
    assert.equal(report.attributes.fixedTPM, true);
    assert.equal(report.attributes.restricted, false);
  });

  it('evict removes the key; a second evict is ERR_TPM_KEY_NOT_FOUND', async () => {
    const result = await withTcti('evict', '--handle', '0x81000010');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(tpm2(swtpm.tcti, 'getcap', 'handles-persistent').trim(), '');
    assertFails(await withTcti('evict', '--handle', '0x81000010'), 1, 'ERR_TPM_KEY_NOT_FOUND');
    assertFails(await withTcti('inspect', '--key', '0x81000010'), 1, 'ERR_TPM_KEY_NOT_FOUND');
  });

  it('srk shows 0x81000001; --persist puts the storage primary there, where tpm2-openssl loads key files', async () => {
    const before = await withTcti('srk');
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /^0x81000001 is empty/);
    const persisted = await withTcti('srk', '--persist', '--json');
    assert.equal(persisted.code, 0, persisted.stderr);
    assert.deepEqual(JSON.parse(persisted.stdout), { handle: '0x81000001', state: 'storage-primary' });
    assert.match(tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000001'), /restricted\|decrypt/);
    try {
      // A key file of the storage primary, told that its parent is the persistent SRK:
      // tpm2-openssl loads it there, so the SRK is that very key.
      const tpm = await Tpm.open({ tcti: swtpm.tcti });
      const key = await tpm.createKey({ alg: 'ES256' });
      await tpm.close();
      const file = path.join(dir, 'under-srk.pem');
      writeFileSync(file, encodeKeyFile({ ...decodeKeyFile(key.toPem()), parent: 0x81000001 }));
      writeFileSync(path.join(dir, 'digest'), createHash('sha256').update('srk').digest());
      execFileSync(
        'openssl',
        ['pkeyutl', '-provider', 'tpm2', '-provider', 'base', '-sign', '-inkey', file].concat([
          '-in',
          path.join(dir, 'digest'),
          '-out',
          path.join(dir, 'sig'),
        ]),
        { env: { ...process.env, TPM2OPENSSL_TCTI: swtpm.tcti }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const signature = readFileSync(path.join(dir, 'sig'));
      assert.ok(verify('sha256', Buffer.from('srk'), { key: key.publicKey, dsaEncoding: 'der' }, signature));
      const again = await withTcti('srk', '--persist');
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^0x81000001 holds the storage primary/);
    } finally {
      tpm2(swtpm.tcti, 'evictcontrol', '-C', 'o', '-c', '0x81000001');
    }
  });

  it('reports an unreachable TPM as ERR_TPM_CONNECTION (exit 1, one line on stderr)', async () => {
    assertFails(
      await spawnCli(['pubkey', '--key', '0x81000010', '--tcti', 'swtpm:host=127.0.0.1,port=1']),
      1,
      'ERR_TPM_CONNECTION',
    );
  });

  describe('usage errors exit 2', () => {
    const cases: [string, string[]][] = [
      ['no command', []],
      ['an unknown command', ['frobnicate']],
      ['an unknown flag', ['pubkey', '--key', '0x81000010', '--bogus']],
      ['a missing required flag', ['keygen', '--alg', 'RS256']],
      ['an unknown algorithm', ['keygen', '--alg', 'HS256', '--persist', '0x81000010']],
      ['a bad RSA size', ['keygen', '--alg', 'RS256', '--bits', '1024', '--persist', '0x81000010']],
      [
        'an unset --auth-env variable',
        ['keygen', '--alg', 'RS256', '--persist', '0x81000010', '--auth-env', 'NOPE_UNSET'],
      ],
      ['an unknown format', ['pubkey', '--key', '0x81000010', '--format', 'der']],
      ['a handle outside the persistent range', ['keygen', '--alg', 'ES256', '--persist', '0x80000001']],
      ['a handle that is not hex', ['evict', '--handle', 'xyz']],
      ['a bad PCR selection', ['keygen', '--alg', 'ES256', '--out', 'k.pem', '--pcrs', 'sha1:0']],
      ['both --persist and --out', ['keygen', '--alg', 'ES256', '--out', 'k.pem', '--persist', '0x81000010']],
      [
        '--mode id-token without --target-audience',
        ['token', '--key', '0x81000010', '--email', 'e', '--mode', 'id-token'],
      ],
      ['verify with two key sources', ['verify', '--pubkey', 'a', '--jwks', 'b', 'x.y.z']],
    ];
    for (const [what, args] of cases) {
      it(what, async () => {
        const result = await cli(args);
        assert.equal(result.code, 2, result.stderr);
        if (args.length > 0) assertFails(result, 2, 'USAGE');
      });
    }
  });

  it('--version prints the package version; a usage error exits 2 (as a process)', async () => {
    const result = await spawnCli(['--version']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
    assertFails(await spawnCli(['frobnicate']), 2, 'USAGE');
  });

  it('every command has --help with an example', async () => {
    const overview = await cli(['--help']);
    const commands = [...overview.stdout.matchAll(/^  ([a-z-]+) {2,}/gm)].map((m) => m[1]!);
    assert.ok(commands.length >= 9, overview.stdout);
    for (const command of commands) {
      const help = await cli([command, '--help']);
      assert.equal(help.code, 0, command);
      assert.match(help.stdout, new RegExp(`^  tpm-jwt ${command} `, 'm'), `${command} --help shows an example`);
    }
  });

  it('--help prints a command usage with examples', async () => {
    const result = await cli(['keygen', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /tpm-jwt keygen --alg RS256 --persist 0x81000010/);
  });
});
