import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { Tpm, TpmJwtError } from '../lib/index.js';
import { native, nativePath } from '../lib/native.js';
import { startChipRelay, startSoftwareTpm } from '../lib/testing/index.js';
import { resolveTcti } from '../lib/tpm/tcti.js';
import { useSwtpm } from './helpers/swtpm.js';
import { overlayEnv } from './helpers/env.js';

describe('10 Tpm.open / close', () => {
  const swtpm = useSwtpm();

  it('opens the TPM named by the tcti option and closes it', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    assert.equal(tpm.tcti, swtpm.tcti);
    assert.deepEqual(await tpm.persistentHandles(), []);
    await tpm.close();
  });

  it('opens a TPM that is already started more than once, and sends it no TPM2_Startup', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti });
    try {
      const a = await Tpm.open({ tcti: relay.tcti });
      const b = await Tpm.open({ tcti: relay.tcti });
      await Promise.all([a.close(), b.close()]);
      assert.equal(relay.count('Startup'), 0);
    } finally {
      await relay.close();
    }
  });

  it('starts a TPM that has not been started (TPM2_Startup after TPM_RC_INITIALIZE), once', async () => {
    // Powered on without startup-clear: a chip before its firmware has started it.
    const unstarted = await startSoftwareTpm({ startup: false });
    const relay = await startChipRelay({ tcti: unstarted.tcti });
    try {
      const tpm = await Tpm.open({ tcti: relay.tcti });
      assert.equal((await (await tpm.createKey({ alg: 'ES256' })).sign(Buffer.from('x'))).length, 64);
      await tpm.close();
      const again = await Tpm.open({ tcti: relay.tcti });
      await again.close();
      assert.equal(relay.count('Startup'), 1);
      assert.ok(
        relay.log.some((r) => r.rc === 0x100),
        'TPM_RC_INITIALIZE first',
      );
    } finally {
      await relay.close();
      await unstarted.stop();
    }
  });

  it('resolves the TCTI: option, then TPM2TOOLS_TCTI, then TSS2_TCTI, else the default search', () => {
    const env = { TPM2TOOLS_TCTI: 'device:/dev/tpmrm0', TSS2_TCTI: 'mssim:port=2321' };
    assert.equal(resolveTcti('swtpm:port=1', env), 'swtpm:port=1');
    assert.equal(resolveTcti(undefined, env), 'device:/dev/tpmrm0');
    assert.equal(resolveTcti(undefined, { TSS2_TCTI: 'mssim:port=2321' }), 'mssim:port=2321');
    assert.equal(resolveTcti(undefined, {}), '');
  });

  it('uses TPM2TOOLS_TCTI when no option is given', async () => {
    const restore = overlayEnv({ TPM2TOOLS_TCTI: swtpm.tcti });
    try {
      const tpm = await Tpm.open();
      assert.equal(tpm.tcti, swtpm.tcti);
      await tpm.close();
    } finally {
      restore();
    }
  });

  it('fails with ERR_TPM_CONNECTION when nothing listens', async () => {
    await assert.rejects(Tpm.open({ tcti: 'swtpm:host=127.0.0.1,port=1' }), (err: unknown) => {
      assert.ok(err instanceof TpmJwtError);
      assert.equal(err.code, 'ERR_TPM_CONNECTION');
      assert.match(err.message, /port=1/);
      return true;
    });
  });

  it('fails with ERR_TPM_CONNECTION for an unknown TCTI module', async () => {
    await assert.rejects(Tpm.open({ tcti: 'no-such-tcti:x' }), { code: 'ERR_TPM_CONNECTION' });
  });

  it('rejects a non-string tcti with ERR_INVALID_ARGUMENT', async () => {
    await assert.rejects(Tpm.open({ tcti: 42 as unknown as string }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('rejects calls after close with ERR_TPM_CLOSED, and close twice is fine', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    await tpm.close();
    await tpm.close();
    await assert.rejects(tpm.persistentHandles(), { code: 'ERR_TPM_CLOSED' });
    await assert.rejects(tpm.createKey({ alg: 'ES256' }), { code: 'ERR_TPM_CLOSED' });
  });

  it('makes a second close wait for the first, which waits for the running call', async () => {
    // The keygen's Create is held at the relay until close() has come: surely running then.
    let reached!: () => void;
    const running = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const relay = await startChipRelay({
      tcti: swtpm.tcti,
      onCommand: ({ name }) => {
        if (name !== 'Create') return undefined;
        reached();
        return held;
      },
    });
    try {
      const tpm = await Tpm.open({ tcti: relay.tcti });
      const keygen = tpm.createKey({ alg: 'RS256', bits: 3072 });
      await running;
      const first = tpm.close();
      assert.equal(tpm.close(), first);
      let keygenDone = false;
      let closed = false;
      void keygen.then(() => (keygenDone = true));
      void first.then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(closed, false, 'close settled while the call was running');
      release();
      await first;
      assert.ok(keygenDone, 'close settled after the running call');
      assert.equal((await keygen).publicKey.asymmetricKeyDetails?.modulusLength, 3072);
    } finally {
      release();
      await relay.close();
    }
  });

  it('survives a worker thread terminated in the middle of TPM calls', async () => {
    // The worker drives the addon itself: each environment loads its own instance.
    const script = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addon);
      const context = new addon.Context();
      context.open(workerData.tcti).then(async () => {
        parentPort.postMessage('open');
        for (;;) await context.handles(0x81000000, 1);
      });`;
    native();
    const addon = nativePath();
    // Termination lands at a different point of the call loop each round: between
    // calls, inside one, while results are handed back.
    for (let round = 0; round < 40; round++) {
      const worker = new Worker(script, { eval: true, workerData: { tcti: swtpm.tcti, addon } });
      await once(worker, 'message');
      await new Promise((r) => setTimeout(r, 1 + (round % 20)));
      await worker.terminate();
    }
    // The process is still here and the TPM still answers.
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    assert.deepEqual(await tpm.persistentHandles(), []);
    await tpm.close();
  });

  it('rejects calls still queued at close with ERR_TPM_CLOSED; the running one completes', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    const key = await tpm.createKey({ alg: 'ES256' });
    // An RSA keygen is surely on the TPM 30 ms after it was queued, and still running.
    const running = tpm.createKey({ alg: 'RS256', bits: 3072 });
    await new Promise((r) => setTimeout(r, 30));
    const queued = Array.from({ length: 10 }, () => key.sign(Buffer.from('queued')));
    const closing = tpm.close();
    const results = await Promise.allSettled(queued);
    await closing;
    assert.equal((await running).publicKey.asymmetricKeyDetails?.modulusLength, 3072);
    for (const result of results) {
      assert.equal(result.status, 'rejected', 'a call queued behind the running one ran after close()');
      assert.equal((result as PromiseRejectedResult).reason.code, 'ERR_TPM_CLOSED');
    }
  });
});
