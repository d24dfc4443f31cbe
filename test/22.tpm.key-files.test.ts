import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { startSoftwareTpm } from '../lib/testing/index.js';
import { Tpm, TpmSigner } from '../lib/index.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { encodeKeyFile, type KeyFile } from '../lib/tpm/key-file.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

describe('22 TSS2 key files', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    dir = swtpm.tempDir('keyfile');
    tpm = await swtpm.openTpm();
  });

  it('writes a key as TSS2 PEM and loads it back to sign (and through TpmSigner by path)', async () => {
    const key = await tpm.createKey({ alg: 'ES256' });
    const pem = key.toPem();
    assert.match(pem, /^-----BEGIN TSS2 PRIVATE KEY-----\n/);
    const again = await tpm.loadKey(pem);
    assert.deepEqual(again.publicKey.export({ format: 'jwk' }), key.publicKey.export({ format: 'jwk' }));
    const data = Buffer.from('key file');
    assert.ok(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, await again.sign(data)));

    writeFileSync(file('es256.pem'), pem);
    const signer = await TpmSigner.open({ key: file('es256.pem'), tcti: swtpm.tcti });
    try {
      assert.ok(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, await signer.sign(data)));
    } finally {
      await signer.close();
    }
  });

  it('refuses toPem on a persistent key (ERR_INVALID_ARGUMENT)', async () => {
    const key = await tpm.createKey({ alg: 'ES256', persist: 0x81000040 });
    swtpm.cleanup(() => tpm.evict(0x81000040));
    assert.throws(() => key.toPem(), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('loads and signs with a key made by tpm2-tools (tpm2_encodeobject)', async () => {
    const primary = file('primary.ctx');
    tpm2(
      swtpm.tcti,
      'createprimary',
      '-C',
      'o',
      '-g',
      'sha256',
      '-G',
      'ecc256:aes128cfb',
      '-a',
      'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda',
      '-c',
      primary,
    );
    tpm2(swtpm.tcti, 'create', '-C', primary, '-G', 'rsa2048', '-u', file('k.pub'), '-r', file('k.priv'));
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'encodeobject', '-C', primary, '-u', file('k.pub'), '-r', file('k.priv'), '-o', file('tools.pem'));
    // tpm2_encodeobject 5.4 leaves a session loaded; flushing every session also drops
    // this suite's own, which tpm-jwt must replace by itself.
    tpm2(swtpm.tcti, 'flushcontext', '-l');
    tpm2(swtpm.tcti, 'load', '-C', primary, '-u', file('k.pub'), '-r', file('k.priv'), '-c', file('k.ctx'));
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'readpublic', '-c', file('k.ctx'), '-f', 'pem', '-o', file('tools-pub.pem'));
    tpm2(swtpm.tcti, 'flushcontext', '-t');

    // tpm2-tools 5.4 writes emptyAuth inverted; the key loads all the same.
    const key = await tpm.loadKey(readFileSync(file('tools.pem'), 'utf8'));
    const data = Buffer.from('made by tpm2-tools');
    const toolsKey = createPublicKey(readFileSync(file('tools-pub.pem')));
    assert.ok(verify('sha256', data, toolsKey, await key.sign(data, { alg: 'RS256' })));
  });

  it('loads a key whose parent is a persistent storage key; refuses it under another parent', async () => {
    tpm2(swtpm.tcti, 'createprimary', '-C', 'o', '-G', 'rsa2048:aes128cfb', '-c', file('srk.ctx'));
    tpm2(swtpm.tcti, 'evictcontrol', '-C', 'o', '-c', file('srk.ctx'), '0x81000001');
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    swtpm.cleanup(() => tpm.evict(0x81000001));
    tpm2(swtpm.tcti, 'create', '-C', '0x81000001', '-G', 'ecc256', '-u', file('p.pub'), '-r', file('p.priv'));
    tpm2(
      swtpm.tcti,
      'encodeobject',
      '-C',
      '0x81000001',
      '-u',
      file('p.pub'),
      '-r',
      file('p.priv'),
      '-o',
      file('p.pem'),
    );
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'flushcontext', '-l');

    const text = readFileSync(file('p.pem'), 'utf8');
    const key = await tpm.loadKey(text);
    const data = Buffer.from('persistent parent');
    assert.ok(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, await key.sign(data)));
    assert.match(key.toPem(), /BEGIN TSS2 PRIVATE KEY/);
    assert.ok((await tpm.loadKey(key.toPem())).publicKey.equals(key.publicKey), 'toPem keeps the parent');

    // The same blobs claimed to be under the owner's storage primary: not its key.
    const moved = encodeKeyFile({ ...decodeKeyFile(text), parent: 0x40000001 });
    await assert.rejects(tpm.loadKey(moved), { code: 'ERR_KEY_FILE_INVALID' });
    const orphan = encodeKeyFile({ ...decodeKeyFile(text), parent: 0x81000099 });
    await assert.rejects(tpm.loadKey(orphan), { code: 'ERR_TPM_KEY_NOT_FOUND' });
  });

  it('writes DER that reads back the same: short and long lengths, parents with the top bit set', () => {
    // Blobs the reader accepts: TPM2Bs, a 16-bit size then that many bytes.
    const tpm2b = (size: number, fill: number) =>
      Buffer.concat([Buffer.from([size >> 8, size & 0xff]), Buffer.alloc(size, fill)]);
    for (const parent of [0x40000001, 0x81000001, 0x81ffffff, 0]) {
      for (const size of [0, 1, 125, 126, 253, 254, 300, 1000]) {
        const key: KeyFile = {
          parent,
          public: tpm2b(size, 1),
          private: tpm2b(size + 1, 2),
          emptyAuth: size % 2 === 0,
          policy: size > 200 ? [{ code: 0x17f, policy: new Uint8Array(size).fill(3) }] : [],
        };
        const back = decodeKeyFile(encodeKeyFile(key));
        assert.deepEqual(
          { ...back, public: Buffer.from(back.public), private: Buffer.from(back.private) },
          key,
          `parent ${parent}, size ${size}`,
        );
      }
    }
  });

  for (const alg of ['ES256', 'RS256'] as const) {
    it(`writes an ${alg} key file that the tpm2-openssl provider signs with`, async () => {
      const key = await tpm.createKey({ alg });
      writeFileSync(file(`${alg}.pem`), key.toPem());
      const data = Buffer.from(`openssl ${alg}`);
      writeFileSync(file('digest'), createHash('sha256').update(data).digest());
      execFileSync(
        'openssl',
        [
          'pkeyutl',
          '-provider',
          'tpm2',
          '-provider',
          'base',
          '-sign',
          '-inkey',
          file(`${alg}.pem`),
          '-in',
          file('digest'),
          '-out',
          file('sig'),
        ],
        { env: { ...process.env, TPM2OPENSSL_TCTI: swtpm.tcti }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const signature = readFileSync(file('sig'));
      assert.ok(verify('sha256', data, { key: key.publicKey, dsaEncoding: 'der' }, signature));
    });
  }

  it('keygen --out writes mode 0600, refuses an existing file, replaces it with --force', async () => {
    const out = file('cli.pem');
    const first = await cli(['keygen', '--alg', 'ES256', '--out', out, '--tcti', swtpm.tcti]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const written = readFileSync(out, 'utf8');
    const pub = await cli(['pubkey', '--key', out, '--tcti', swtpm.tcti]);
    assert.equal(pub.stdout, first.stdout);

    assertFails(await cli(['keygen', '--alg', 'ES256', '--out', out, '--tcti', swtpm.tcti]), 1, 'ERR_INVALID_ARGUMENT');
    assert.equal(readFileSync(out, 'utf8'), written, 'the existing file is untouched');
    const forced = await cli(['keygen', '--alg', 'ES256', '--out', out, '--force', '--tcti', swtpm.tcti]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(out, 'utf8'), written);
    assert.equal(statSync(out).mode & 0o777, 0o600);
  });

  describe('bad key files (ERR_KEY_FILE_INVALID)', () => {
    let pem: string;
    before(async () => {
      pem = (await tpm.createKey({ alg: 'ES256' })).toPem();
    });

    it('truncated, corrupted, or not a TSS2 key at all', async () => {
      const body = pem.split('\n').slice(1, -2).join('');
      const wrap = (b64: string) => `-----BEGIN TSS2 PRIVATE KEY-----\n${b64}\n-----END TSS2 PRIVATE KEY-----\n`;
      const der = Buffer.from(body, 'base64');
      const flipped = Buffer.from(der);
      flipped[der.length - 10]! ^= 0xff; // inside privkey: the TPM's integrity check fails
      // pubkey's TPM2B size, one less: tpm2-tss would read the same public area anyway.
      const resized = Buffer.from(der);
      const pubkeyAt = resized.indexOf(Buffer.from(decodeKeyFile(pem).public));
      resized.writeUInt16BE(resized.readUInt16BE(pubkeyAt) - 1, pubkeyAt);
      const cases = [
        wrap(resized.toString('base64')),
        wrap(body.slice(0, body.length / 2)),
        wrap(Buffer.from(der.subarray(0, der.length - 5)).toString('base64')),
        wrap(flipped.toString('base64')),
        wrap(Buffer.from('not asn.1').toString('base64')),
        '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n',
      ];
      for (const text of cases) {
        await assert.rejects(tpm.loadKey(text), { code: 'ERR_KEY_FILE_INVALID' }, text);
      }
      assert.deepEqual(tpm2(swtpm.tcti, 'getcap', 'handles-transient').trim(), '');
    });

    it('a public area that is one TPM2B but no TPMT_PUBLIC, decoded in TypeScript', async () => {
      const decoded = decodeKeyFile(pem);
      const area = Buffer.from(decoded.public).subarray(2);
      const sized = (bytes: Buffer) => Buffer.concat([Buffer.of(bytes.length >> 8, bytes.length & 0xff), bytes]);
      const cases: [Buffer, RegExp][] = [
        [sized(Buffer.concat([area, Buffer.of(0)])), /public area has trailing bytes/],
        [sized(area.subarray(0, area.length - 3)), /public area is truncated/],
      ];
      for (const [bad, message] of cases) {
        await assert.rejects(tpm.loadKey(encodeKeyFile({ ...decoded, public: bad })), {
          code: 'ERR_KEY_FILE_INVALID',
          message,
        });
      }
      assert.deepEqual(tpm2(swtpm.tcti, 'getcap', 'handles-transient').trim(), '');
    });

    it('a key file from another TPM', async () => {
      const other = await startSoftwareTpm();
      try {
        const otherTpm = await Tpm.open({ tcti: other.tcti });
        const foreign = (await otherTpm.createKey({ alg: 'ES256' })).toPem();
        await otherTpm.close();
        await assert.rejects(tpm.loadKey(foreign), { code: 'ERR_KEY_FILE_INVALID' });
      } finally {
        await other.stop();
      }
    });

    it('a path that cannot be read', async () => {
      await assert.rejects(TpmSigner.open({ key: file('missing.pem'), tcti: swtpm.tcti }), {
        code: 'ERR_KEY_FILE_INVALID',
      });
      assertFails(await cli(['pubkey', '--key', file('missing.pem'), '--tcti', swtpm.tcti]), 1, 'ERR_KEY_FILE_INVALID');
    });
  });
});
