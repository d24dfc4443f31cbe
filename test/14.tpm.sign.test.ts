import assert from 'node:assert/strict';
import { constants, verify, type KeyObject } from 'node:crypto';

import { Tpm, type JwsAlgorithm, type TpmKey } from '../lib/index.js';
import { useSwtpm } from './helpers/swtpm.js';

/** node:crypto's verdict on a JWS-form signature. */
function verifies(alg: JwsAlgorithm, key: KeyObject, data: Buffer, sig: Uint8Array, pssSalt?: number) {
  switch (alg) {
    case 'RS256':
      return verify('sha256', data, key, sig);
    case 'PS256':
      return verify(
        'sha256',
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pssSalt ?? constants.RSA_PSS_SALTLEN_AUTO },
        sig,
      );
    case 'ES256':
      return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  }
}

describe('14 TpmKey.sign', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  const keys = new Map<string, TpmKey>();

  before(async () => {
    tpm = await swtpm.openTpm();
    keys.set('rsa', await tpm.createKey({ alg: 'RS256' }));
    keys.set('ec', await tpm.createKey({ alg: 'ES256' }));
    keys.set('rsa-persistent', await tpm.createKey({ alg: 'PS256', persist: 0x81000100 }));
    swtpm.cleanup(() => tpm.evict(0x81000100));
    keys.set('ec-persistent', await tpm.createKey({ alg: 'ES256', persist: 0x81000101 }));
    swtpm.cleanup(() => tpm.evict(0x81000101));
  });

  const cases: [string, JwsAlgorithm][] = [
    ['rsa', 'RS256'],
    ['rsa', 'PS256'],
    ['ec', 'ES256'],
    ['rsa-persistent', 'RS256'],
    ['rsa-persistent', 'PS256'],
    ['ec-persistent', 'ES256'],
  ];
  for (const [name, alg] of cases) {
    it(`signs ${alg} with a ${name} key; node:crypto verifies it`, async () => {
      const key = keys.get(name)!;
      const data = Buffer.from(`header.payload for ${name} ${alg}`);
      const sig = await key.sign(data, { alg });
      assert.equal(sig.length, alg === 'ES256' ? 64 : 256);
      assert.ok(verifies(alg, key.publicKey, data, sig), 'signature verifies');
      assert.ok(!verifies(alg, key.publicKey, Buffer.from('other data'), sig), 'other data fails');
    });
  }

  it('makes PS256 signatures with a digest-length salt, as JWS (RFC 7518) requires', async () => {
    const key = keys.get('rsa')!;
    const data = Buffer.from('pss salt length');
    const sig = await key.sign(data, { alg: 'PS256' });
    assert.ok(verifies('PS256', key.publicKey, data, sig, constants.RSA_PSS_SALTLEN_DIGEST));
  });

  it('signs with the key default algorithm: PS256 for a key created for it', async () => {
    const key = keys.get('rsa-persistent')!;
    assert.equal(key.algorithm, 'PS256');
    const data = Buffer.from('default alg');
    assert.ok(verifies('PS256', key.publicKey, data, await key.sign(data)));
  });

  it('pads ES256 r and s to 32 bytes each (the TPM drops leading zeros)', async () => {
    // About 1 in 128 signatures has r or s below 2^248: sign in batches until one has,
    // so the padding path surely ran (a fixed count would miss it in ~1% of runs).
    const key = keys.get('ec')!;
    const data = Buffer.from('padding');
    let short = 0;
    let signed = 0;
    while (short === 0 && signed < 20_000) {
      const sigs = await Promise.all(Array.from({ length: 200 }, () => key.sign(data)));
      signed += sigs.length;
      for (const sig of sigs) {
        assert.equal(sig.length, 64);
        if (sig[0] === 0 || sig[32] === 0) {
          short++;
          assert.ok(verifies('ES256', key.publicKey, data, sig), 'a padded signature verifies');
        }
      }
      assert.ok(verifies('ES256', key.publicKey, data, sigs[0]!));
    }
    assert.ok(short > 0, `${short} of ${signed} signatures had a leading zero byte in r or s`);
  });

  it('rejects an algorithm the key cannot use with ERR_INVALID_ARGUMENT', async () => {
    await assert.rejects(keys.get('ec')!.sign(Buffer.from('x'), { alg: 'RS256' }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(keys.get('rsa')!.sign(Buffer.from('x'), { alg: 'ES256' }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(keys.get('rsa')!.sign('text' as unknown as Uint8Array), {
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('settles queued signs in the order they were made', async () => {
    const key = keys.get('ec')!;
    const order: number[] = [];
    await Promise.all(Array.from({ length: 40 }, (_, i) => key.sign(Buffer.from([i])).then(() => order.push(i))));
    assert.deepEqual(
      order,
      Array.from({ length: 40 }, (_, i) => i),
    );
  });

  it('keeps the event loop ticking while 100 signs are queued', async () => {
    const key = keys.get('rsa')!;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let settled = 0;
    let ticksBeforeLast = 0;
    const signs = Array.from({ length: 100 }, () =>
      key.sign(Buffer.from('tick')).then(() => {
        if (++settled === 100) ticksBeforeLast = ticks;
      }),
    );
    await Promise.all(signs);
    clearInterval(timer);
    // A blocking sign would run all 100 before the first timer callback.
    assert.ok(ticksBeforeLast >= 10, `the 1 ms timer fired ${ticksBeforeLast} times during the signs`);
  });
});
