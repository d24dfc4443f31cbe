import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { Tpm } from '../lib/index.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

const HANDLE = 0x81000010;

describe('12 TPM keys', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;

  before(async () => {
    dir = swtpm.tempDir('keys');
    tpm = await swtpm.openTpm();
  });

  /** The public key tpm2-tools reads from a persistent handle, as SPKI PEM. */
  function toolsPublicPem(handle: number): string {
    const file = path.join(dir, `${handle.toString(16)}.pem`);
    tpm2(swtpm.tcti, 'readpublic', '-c', `0x${handle.toString(16)}`, '-f', 'pem', '-o', file);
    return readFileSync(file, 'utf8');
  }

  const spki = (key: { publicKey: import('node:crypto').KeyObject }) =>
    key.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  for (const [alg, bits, kty] of [
    ['RS256', 2048, 'rsa'],
    ['PS256', 3072, 'rsa'],
    ['ES256', undefined, 'ec'],
  ] as const) {
    it(`creates a ${alg} key${bits ? ` (${bits} bits)` : ''} that cannot leave the TPM`, async () => {
      const key = await tpm.createKey({ alg, ...(bits && { bits }) });
      assert.equal(key.algorithm, alg);
      assert.equal(key.handle, undefined);
      assert.equal(key.publicKey.asymmetricKeyType, kty);
      if (bits) assert.equal(key.publicKey.asymmetricKeyDetails?.modulusLength, bits);
      else assert.equal(key.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      const a = key.attributes;
      assert.ok(a.fixedTPM && a.fixedParent && a.sensitiveDataOrigin && a.userWithAuth && a.sign);
      assert.ok(!a.restricted && !a.decrypt);
    });
  }

  it('persists a key at a handle; tpm2_readpublic reads the same public key', async () => {
    const key = await tpm.createKey({ alg: 'RS256', persist: HANDLE });
    assert.equal(key.handle, HANDLE);
    assert.deepEqual(await tpm.persistentHandles(), [HANDLE]);
    assert.equal(toolsPublicPem(HANDLE), spki(key));
  });

  it('opens the persisted key by number, hex string and handle: reference', async () => {
    const created = spki(await tpm.loadKey(HANDLE));
    for (const ref of ['0x81000010', '81000010', 'handle:0x81000010']) {
      const key = await tpm.loadKey(ref);
      assert.equal(key.handle, HANDLE);
      assert.equal(spki(key), created);
      assert.equal(key.algorithm, 'RS256');
      assert.deepEqual(key.algorithms, ['RS256', 'PS256']);
    }
  });

  it('refuses an occupied handle with ERR_TPM_HANDLE_IN_USE and keeps the old key', async () => {
    const before = toolsPublicPem(HANDLE);
    await assert.rejects(tpm.createKey({ alg: 'ES256', persist: HANDLE }), {
      code: 'ERR_TPM_HANDLE_IN_USE',
      message: /0x81000010/,
    });
    assert.equal(toolsPublicPem(HANDLE), before);
  });

  it('replaces the object at an occupied handle with force', async () => {
    const key = await tpm.createKey({ alg: 'ES256', persist: HANDLE, force: true });
    assert.equal(toolsPublicPem(HANDLE), spki(key));
    assert.equal((await tpm.loadKey(HANDLE)).algorithm, 'ES256');
  });

  it('evicts a persisted key; a missing handle is ERR_TPM_KEY_NOT_FOUND', async () => {
    await tpm.evict(HANDLE);
    assert.deepEqual(await tpm.persistentHandles(), []);
    assert.throws(() => tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000010'));
    // The TPM's own answer travels with the code: TPM_RC_HANDLE on handle 1.
    await assert.rejects(tpm.loadKey(HANDLE), {
      name: 'TpmJwtError',
      code: 'ERR_TPM_KEY_NOT_FOUND',
      tpmRc: 0x18b,
      command: 'Esys_TR_FromTPMPublic',
      tpmRcText: /handle is not correct/,
      message: /no object at handle 0x81000010/,
    });
    await assert.rejects(tpm.evict(HANDLE), { code: 'ERR_TPM_KEY_NOT_FOUND' });
  });

  /** Persists a key made by tpm2-tools (`tpm2_create` with `createArgs`) at `handle`. */
  function toolsPersist(handle: string, ...createArgs: string[]): void {
    const ctx = path.join(dir, 'primary.ctx');
    const pub = path.join(dir, 'key.pub');
    const priv = path.join(dir, 'key.priv');
    const loaded = path.join(dir, 'key.ctx');
    tpm2(swtpm.tcti, 'createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb', '-c', ctx);
    tpm2(swtpm.tcti, 'create', '-C', ctx, ...createArgs, '-u', pub, '-r', priv);
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'load', '-C', ctx, '-u', pub, '-r', priv, '-c', loaded);
    tpm2(swtpm.tcti, 'evictcontrol', '-C', 'o', '-c', loaded, handle);
    tpm2(swtpm.tcti, 'flushcontext', '-t');
  }

  it('opens a key persisted by tpm2-tools', async () => {
    toolsPersist('0x81000020', '-G', 'rsa2048');
    const key = await tpm.loadKey(0x81000020);
    assert.equal(spki(key), toolsPublicPem(0x81000020));
    assert.deepEqual(key.algorithms, ['RS256', 'PS256']);
    await tpm.evict(0x81000020);
  });

  it("narrows a key with a fixed scheme to that scheme's algorithm", async () => {
    toolsPersist('0x81000021', '-G', 'rsa2048:rsapss-sha256:null');
    toolsPersist('0x81000022', '-G', 'ecc256:ecdsa-sha256:null');
    const pss = await tpm.loadKey(0x81000021);
    assert.deepEqual(pss.algorithms, ['PS256']);
    assert.equal(pss.algorithm, 'PS256');
    await assert.rejects(pss.sign(Buffer.from('x'), { alg: 'RS256' }), { code: 'ERR_INVALID_ARGUMENT' });
    assert.ok((await pss.sign(Buffer.from('x'))).length === 256);
    assert.deepEqual((await tpm.loadKey(0x81000022)).algorithms, ['ES256']);
    await tpm.evict(0x81000021);
    await tpm.evict(0x81000022);
  });

  it('refuses a storage key, which cannot sign (ERR_TPM_UNSUPPORTED)', async () => {
    const ctx = path.join(dir, 'storage.ctx');
    tpm2(swtpm.tcti, 'createprimary', '-C', 'o', '-G', 'ecc256:aes128cfb', '-c', ctx);
    tpm2(swtpm.tcti, 'evictcontrol', '-C', 'o', '-c', ctx, '0x81000023');
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    await assert.rejects(tpm.loadKey(0x81000023), { code: 'ERR_TPM_UNSUPPORTED', message: /not a signing key/ });
    await tpm.evict(0x81000023);
  });

  it('refuses an HMAC key, neither RSA nor ECC (ERR_TPM_UNSUPPORTED)', async () => {
    toolsPersist('0x81000025', '-G', 'hmac');
    await assert.rejects(tpm.loadKey(0x81000025), {
      code: 'ERR_TPM_UNSUPPORTED',
      message: /neither an RSA nor an ECC key \(type 0x8\)/,
    });
    await tpm.evict(0x81000025);
  });

  it('signs with a restricted key (TPM-side hashing), 5,000-byte messages included', async () => {
    toolsPersist(
      '0x81000024',
      '-G',
      'rsa2048:rsassa-sha256:null',
      '-a',
      'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign',
    );
    const key = await tpm.loadKey(0x81000024);
    assert.equal(key.attributes.restricted, true);
    assert.deepEqual(key.algorithms, ['RS256']);
    const toolsKey = createPublicKey(toolsPublicPem(0x81000024));
    for (const size of [100, 1024, 1025, 5000]) {
      const data = Buffer.alloc(size, size % 251);
      assert.ok(verify('sha256', data, toolsKey, await key.sign(data)), `${size} bytes`);
    }
    // An unrestricted key signs long messages too (hashed in software).
    const plain = await tpm.createKey({ alg: 'ES256' });
    const long = Buffer.alloc(5000, 7);
    assert.ok(verify('sha256', long, { key: plain.publicKey, dsaEncoding: 'ieee-p1363' }, await plain.sign(long)));
    await tpm.evict(0x81000024);
  });

  describe('bad arguments', () => {
    const cases: [string, () => Promise<unknown>][] = [
      ['an unknown alg', () => tpm.createKey({ alg: 'HS256' as 'RS256' })],
      ['no options', () => tpm.createKey(undefined as unknown as { alg: 'RS256' })],
      ['an RSA size other than 2048/3072', () => tpm.createKey({ alg: 'RS256', bits: 1024 as 2048 })],
      ['bits on an EC key', () => tpm.createKey({ alg: 'ES256', bits: 2048 })],
      ['a transient handle to persist at', () => tpm.createKey({ alg: 'ES256', persist: 0x80000001 })],
      ['a handle that is not hex', () => tpm.loadKey('handle:nope')],
      ['an auth value over 64 bytes', () => tpm.createKey({ alg: 'ES256', auth: 'x'.repeat(65) })],
      ['an auth value of the wrong type', () => tpm.createKey({ alg: 'ES256', auth: 5 as unknown as string })],
      ['a handle outside the persistent range to evict', () => tpm.evict(0x40000001)],
    ];
    for (const [what, call] of cases) {
      it(`rejects ${what} with ERR_INVALID_ARGUMENT`, async () => {
        await assert.rejects(call(), { code: 'ERR_INVALID_ARGUMENT' });
      });
    }
  });
});
