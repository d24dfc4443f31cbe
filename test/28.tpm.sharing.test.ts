/**
 * One TPM without a resource manager, shared by many processes at once (the CI with
 * swtpm case, or /dev/tpm0): contexts hold no slot while idle, wait for slots that
 * others hold, and bring back saved contexts the TPM no longer has.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';
import { Tpm, TpmSigner } from '../lib/index.js';
import { signAtOnce } from './helpers/signer-processes.js';
import { useSwtpm } from './helpers/swtpm.js';
import { leftovers, tpm2 } from './helpers/tools.js';

describe('28 sharing one TPM between processes, without a resource manager', function () {
  this.timeout(120_000);
  const swtpm = useSwtpm();
  let dir: string;
  let keyFile: string;

  before(async () => {
    dir = swtpm.tempDir('sharing');
    const tpm = await swtpm.openTpm();
    await tpm.createKey({ alg: 'ES256', persist: 0x81000094 });
    swtpm.cleanup(() => tpm.evict(0x81000094));
    keyFile = path.join(dir, 'key.pem');
    writeFileSync(keyFile, (await tpm.createKey({ alg: 'ES256' })).toPem());
  });

  // Saved sessions take no slot; this suite's own open Tpm keeps one.
  const nothingLoaded = async (tcti = swtpm.tcti) =>
    assert.equal(await leftovers(tcti, ['transient', 'loaded-session']), '', 'handles left loaded');

  for (const mode of ['encrypt', 'plain']) {
    it(`6 processes x 100 signs with a persistent key, ${mode} sessions: all succeed and verify`, async () => {
      const outputs = await signAtOnce(swtpm.tcti, 6, 'handle:0x81000094', 100, mode);
      assert.deepEqual(
        outputs.map((out) => out.split(' ').slice(0, 2).join(' ')),
        Array(6).fill('ok 100'),
      );
      await nothingLoaded();
    });

    it(`4 processes x 50 signs with a key file, ${mode} sessions: all succeed and verify`, async () => {
      const outputs = await signAtOnce(swtpm.tcti, 4, keyFile, 50, mode);
      assert.deepEqual(
        outputs.map((out) => out.split(' ').slice(0, 2).join(' ')),
        Array(4).fill('ok 50'),
      );
      await nothingLoaded();
    });
  }

  // The rest take every slot of a TPM from outside, or restart it: each on a TPM of
  // its own, so that no other client (docker-compose runs one) is in the way.
  describe('on a TPM of its own', () => {
    let own: SoftwareTpm;
    let ownKeyFile: string;
    beforeEach(async () => {
      own = await startSoftwareTpm();
      const tpm = await Tpm.open({ tcti: own.tcti });
      ownKeyFile = path.join(dir, 'own-key.pem');
      writeFileSync(ownKeyFile, (await tpm.createKey({ alg: 'ES256' })).toPem());
      await tpm.close();
    });
    afterEach(() => own.stop());
    // tpm2-tools leaves what it creates loaded: three primaries take every object slot.
    const fillObjectSlots = () => {
      for (const n of [1, 2, 3]) tpm2(own.tcti, 'createprimary', '-C', 'o', '-c', path.join(dir, `held${n}.ctx`));
    };

    it('holds no slot while idle: a key file context leaves the TPM to others between calls', async () => {
      const signer = await TpmSigner.open({ key: ownKeyFile, tcti: own.tcti });
      try {
        await signer.sign(Buffer.from('first'));
        await nothingLoaded(own.tcti);
        // tpm2-tools, which does not wait for slots, can take all of them meanwhile.
        fillObjectSlots();
        tpm2(own.tcti, 'flushcontext', '-t');
        assert.equal((await signer.sign(Buffer.from('second'))).length, 64);
      } finally {
        await signer.close();
      }
    });

    it('waits for slots another process holds, then signs; past retryTimeoutMs it says why', async () => {
      const patient = await TpmSigner.open({ key: ownKeyFile, tcti: own.tcti });
      const impatient = await TpmSigner.open({ key: ownKeyFile, tcti: own.tcti, retryTimeoutMs: 200 });
      try {
        fillObjectSlots();
        await assert.rejects(impatient.sign(Buffer.from('no room')), {
          code: 'ERR_TPM_OBJECT_MEMORY',
          message: /other processes hold them.*tpmrm0/,
        });
        setTimeout(() => tpm2(own.tcti, 'flushcontext', '-t'), 300);
        assert.equal((await patient.sign(Buffer.from('once they are free'))).length, 64);
      } finally {
        await Promise.all([patient.close(), impatient.close()]);
      }
    });

    it('keeps signing with a key file after another process flushes everything, and after a restart', async () => {
      const tpm = await Tpm.open({ tcti: own.tcti });
      try {
        const key = await tpm.loadKey(readFileSync(ownKeyFile, 'utf8'));
        await key.sign(Buffer.from('saves the contexts'));
        // Another process flushes every transient object and saved session...
        tpm2(own.tcti, 'flushcontext', '-t');
        tpm2(own.tcti, 'flushcontext', '-s');
        assert.equal((await key.sign(Buffer.from('after another process flushed'))).length, 64);
        // ...or the TPM restarts, and every saved context is from another epoch.
        await own.restart();
        assert.equal((await key.sign(Buffer.from('after a restart'))).length, 64);
      } finally {
        await tpm.close();
      }
    });
  });
});
