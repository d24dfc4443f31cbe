import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startChipRelay, startSoftwareTpm, TPM_RESPONSES, type SoftwareTpm } from '../lib/testing/index.js';
import { Tpm, TpmJwtError, TpmSigner } from '../lib/index.js';
import { tpm2 } from './helpers/tools.js';

const dirs: string[] = [];
const mkdtemp = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-reliability-'));
  dirs.push(dir);
  return dir;
};

describe('27 reliability: a TPM that goes away, answers "retry", or is left open', function () {
  this.timeout(120_000);
  // Its own swtpm, even with TPM_JWT_TEST_TCTI: this suite kills and restarts it.
  let swtpm: SoftwareTpm;
  before(async () => {
    swtpm = await startSoftwareTpm();
  });
  after(async () => {
    await swtpm?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('finishes in-flight signs on a new connection, or rejects them, when swtpm dies; then carries on', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    try {
      const persistent = await tpm.createKey({ alg: 'ES256', persist: 0x81000010 });
      const fileKey = await tpm.loadKey((await tpm.createKey({ alg: 'ES256' })).toPem());
      const data = Buffer.from('before, during and after');
      assert.equal((await persistent.sign(data)).length, 64);

      const inFlight = Array.from({ length: 300 }, () => persistent.sign(data));
      let settled = 0;
      for (const sign of inFlight)
        sign.then(
          () => settled++,
          () => settled++,
        );
      await Promise.race(inFlight);
      const settledBefore = settled;
      await swtpm.restart();
      assert.ok(settledBefore < 300, 'signs were still queued when swtpm died');
      // A sign changes nothing in the TPM: one that lost its connection is tried once
      // more on a new one, and fails only if the TPM is not back yet.
      const results = await Promise.allSettled(inFlight);
      for (const result of results) {
        if (result.status === 'fulfilled') {
          assert.ok(verify('sha256', data, { key: persistent.publicKey, dsaEncoding: 'ieee-p1363' }, result.value));
        } else {
          assert.ok(result.reason instanceof TpmJwtError, String(result.reason));
          assert.equal(result.reason.code, 'ERR_TPM_CONNECTION');
        }
      }

      // The same Tpm and keys work again: the context reopened itself, with a new
      // session; the persistent key survived the restart, the key file loads again.
      assert.equal((await persistent.sign(data)).length, 64);
      assert.equal((await fileKey.sign(data)).length, 64);
      assert.deepEqual(await tpm.persistentHandles(), [0x81000010]);
      await tpm.evict(0x81000010);
    } finally {
      await tpm.close();
    }
    assert.equal(tpm2(swtpm.tcti, 'getcap', 'handles-transient').trim(), '');
  });

  it('fails a call with ERR_TPM_CONNECTION while the TPM is down, and the next works', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    try {
      const key = await tpm.createKey({ alg: 'ES256', persist: 0x81000011 });
      await swtpm.kill();
      await assert.rejects(key.sign(Buffer.from('x')), { code: 'ERR_TPM_CONNECTION' });
      await swtpm.start();
      assert.equal((await key.sign(Buffer.from('y'))).length, 64);
      await tpm.evict(0x81000011);
    } finally {
      await tpm.close();
    }
  });

  it('closes a context whose TPM is gone without trying to reach it', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti });
    const tpm = await Tpm.open({ tcti: relay.tcti });
    const key = await tpm.createKey({ alg: 'ES256' });
    await relay.close();
    await assert.rejects(key.sign(Buffer.from('x')), { code: 'ERR_TPM_CONNECTION' });
    await tpm.close(); // resolves: nothing to reach, nothing left open
    await assert.rejects(key.sign(Buffer.from('x')), { code: 'ERR_TPM_CLOSED' });
    // Only the relay went away: the TPM behind it still holds the session this
    // context could no longer flush.
    tpm2(swtpm.tcti, 'flushcontext', '-l');
  });

  it('lets no child take the TPM connection along: one spawned mid-command leaves swtpm to others', async () => {
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    let release: (() => void) | undefined;
    const relay = await startChipRelay({
      tcti: swtpm.tcti,
      onCommand: ({ name }) => {
        if (name !== 'Sign' || release) return undefined;
        held();
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const tpm = await Tpm.open({ tcti: relay.tcti });
    let child: ChildProcess | undefined;
    try {
      const key = await tpm.createKey({ alg: 'ES256' });
      const signing = key.sign(Buffer.from('in flight'));
      await holding;
      // Spawned while the Sign waits for its response: a descriptor that is not
      // close-on-exec goes along into each of these.
      const fds = spawnSync('ls', ['-l', '/proc/self/fd'], { encoding: 'utf8' }).stdout;
      child = spawn('sleep', ['60'], { stdio: 'ignore' });
      release!();
      assert.equal((await signing).length, 64);
      const inherited = fds.split('\n').filter((line) => /\s([3-9]|\d{2,}) -> socket:/.test(line));
      assert.deepEqual(inherited, [], 'a child process inherited a socket');
      // Had the child kept the connection open, swtpm (one client at a time) would
      // serve it until the child exits, and every other client of the TPM would wait.
      // (Asynchronously: the relay runs on this event loop.)
      const other = spawn('tpm2_getcap', ['properties-variable'], {
        env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
        stdio: 'ignore',
        timeout: 10_000,
      });
      const status = await new Promise((resolve) => other.once('exit', resolve));
      assert.equal(status, 0, 'another client of the TPM was shut out');
    } finally {
      child?.kill();
      await tpm.close();
      await relay.close();
    }
  });

  it('keeps signing while another process flushes every transient object again and again', async () => {
    const dir = mkdtemp();
    const keyFile = path.join(dir, 'key.pem');
    const setup = await Tpm.open({ tcti: swtpm.tcti });
    writeFileSync(keyFile, (await setup.createKey({ alg: 'ES256' })).toPem());
    await setup.close();
    const signer = await TpmSigner.open({ key: keyFile, tcti: swtpm.tcti });
    let stop = false;
    let signed = 0;
    const loop = (async () => {
      while (!stop) {
        const message = Buffer.from(`signature ${signed}`);
        const signature = await signer.sign(message);
        assert.ok(verify('sha256', message, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
        signed++;
      }
    })();
    try {
      for (let n = 0; n < 5; n++) {
        // Asynchronously, so that signing goes on while tpm2-tools runs.
        const flush = spawn('tpm2_flushcontext', ['-t'], {
          env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
          stdio: 'ignore',
        });
        await new Promise((resolve) => flush.once('exit', resolve));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Signing goes on: within seconds, not the link's two-minute deadline a held
      // connection would cost. (swtpm serves one connection at a time, and now and then
      // answers a command that meets another client's about a second late.)
      const before = signed;
      for (let waited = 0; signed === before && waited < 3000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(signed > before, 'signing stopped');
    } finally {
      stop = true;
      await loop;
      await signer.close();
    }
  });

  it('fails only with ERR_TPM_CONNECTION while swtpm restarts under a signing loop, then signs again', async () => {
    // A TPM of its own: each restart without an orderly shutdown counts against the
    // dictionary-attack limit of the TPM it happens to.
    const own = await startSoftwareTpm();
    const keyFile = path.join(mkdtemp(), 'key.pem');
    const setup = await Tpm.open({ tcti: own.tcti });
    writeFileSync(keyFile, (await setup.createKey({ alg: 'ES256' })).toPem());
    await setup.close();
    const signer = await TpmSigner.open({ key: keyFile, tcti: own.tcti });
    let stop = false;
    const failures: string[] = [];
    const loop = (async () => {
      while (!stop) {
        await signer
          .sign(Buffer.from('restarts'))
          .catch((err: TpmJwtError) => failures.push(`${err.code}: ${err.message}`));
      }
    })();
    try {
      for (let n = 0; n < 2; n++) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        await own.restart();
      }
      await new Promise((resolve) => setTimeout(resolve, 150));
      stop = true;
      await loop;
      assert.deepEqual(
        failures.filter((failure) => !failure.startsWith('ERR_TPM_CONNECTION: ')),
        [],
      );
      assert.equal((await signer.sign(Buffer.from('after'))).length, 64);
    } finally {
      stop = true;
      await loop;
      await signer.close();
      await own.stop();
    }
  });

  it('reopens after the link broke under a command whose failure was ignored, not "wrong order"', async () => {
    // The context saves its session when it goes idle, ignoring a failure (the next
    // call would start a new session anyway): here the link breaks right then.
    const relay = await startChipRelay({
      tcti: swtpm.tcti,
      faults: [{ command: 'ContextSave', drop: 'before', times: 2 }],
    });
    const tpm = await Tpm.open({ tcti: relay.tcti });
    try {
      const key = await tpm.loadKey((await tpm.createKey({ alg: 'ES256' })).toPem());
      for (const n of [1, 2, 3, 4]) assert.equal((await key.sign(Buffer.from(`sign ${n}`))).length, 64);
      assert.equal(relay.log.filter((r) => r.fault !== undefined).length, 2);
    } finally {
      await tpm.close();
      await relay.close();
    }
    // Only the link broke, not the TPM: it still holds what the cut-off contexts had
    // loaded, which they did not flush (after a break, a handle may be another
    // process's). The next users free them as tpm2-tools does.
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'flushcontext', '-l');
  });

  it('gives ERR_TPM_TIMEOUT when the TPM stalls past commandTimeoutMs, and the next call works', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti });
    const tpm = await Tpm.open({ tcti: relay.tcti, encrypt: false, commandTimeoutMs: 300 });
    try {
      const key = await tpm.createKey({ alg: 'ES256' });
      await key.sign(Buffer.from('warm'));
      relay.setFaults([{ command: 'Sign', stallMs: 3000, times: 1 }]);
      const start = Date.now();
      await assert.rejects(key.sign(Buffer.from('stalled')), (err: TpmJwtError) => {
        assert.equal(err.code, 'ERR_TPM_TIMEOUT');
        assert.match(err.message, /did not answer within 300 ms/);
        return true;
      });
      // Not asked again on a new connection: the caller said how long to wait.
      assert.ok(Date.now() - start < 2500, `${Date.now() - start} ms`);
      assert.equal((await key.sign(Buffer.from('after'))).length, 64);
    } finally {
      await tpm.close();
      await relay.close();
    }
    await assert.rejects(Tpm.open({ tcti: swtpm.tcti, commandTimeoutMs: 0 }), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('tries TPM_RC_RETRY again, a bounded number of times', async () => {
    const relay = await startChipRelay({ tcti: swtpm.tcti, faults: [{ command: 'Sign', rc: 'RETRY', times: 8 }] });
    const injected = () => relay.log.filter((r) => r.fault !== undefined).length;
    const tpm = await Tpm.open({ tcti: relay.tcti });
    try {
      const key = await tpm.createKey({ alg: 'ES256' });
      // More "retry" answers than tpm2-tss absorbs on its own (5 submissions).
      assert.equal((await key.sign(Buffer.from('eventually'))).length, 64);
      assert.equal(injected(), 8);

      relay.clear();
      relay.setFaults([{ command: 'Sign', rc: 'RETRY' }]);
      await assert.rejects(key.sign(Buffer.from('never')), { code: 'ERR_TPM_BUSY', tpmRc: TPM_RESPONSES.RETRY });
      assert.ok(injected() > 8 && injected() <= 25, `gave up after ${injected()} attempts`);
    } finally {
      await tpm.close();
      await relay.close();
    }
  });

  it('lets a process with an open context exit by itself', () => {
    const lib = fileURLToPath(new URL('../lib/index.ts', import.meta.url));
    const script = `
      const { Tpm } = await import(${JSON.stringify(lib)});
      const tpm = await Tpm.open({ tcti: ${JSON.stringify(swtpm.tcti)} });
      const key = await tpm.createKey({ alg: 'ES256' });
      await key.sign(Buffer.from('left open'));
      console.log('signed');`;
    const start = Date.now();
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'signed');
    assert.ok(Date.now() - start < 20_000);
  });

  it('soaks: 25,000 signs in bursts of 500 on one context, flat RSS, nothing left in the TPM', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti, encrypt: false });
    try {
      const key = await tpm.createKey({ alg: 'ES256', persist: 0x81000012 });
      const data = Buffer.from('soak');
      const burst = async () => {
        const signatures = await Promise.all(Array.from({ length: 500 }, () => key.sign(data)));
        assert.ok(signatures.every((s) => s.length === 64));
      };
      // The allocator's arenas settle over the first ten thousand signs (measured:
      // about 9 MB, then flat); a leak keeps growing after that. What is measured is
      // memory outside V8's heap (a native leak is never in it), sampled after every
      // 2,500 signs: the allocator returns and takes back a few MB at will, so the
      // lowest of the first two samples is compared with the lowest of the last two,
      // which a leak of more than about 500 bytes a sign would lift past 5 MB.
      for (let i = 0; i < 20; i++) await burst();
      const outsideHeap = () => {
        (globalThis as { gc?: () => void }).gc?.();
        const { rss, heapTotal } = process.memoryUsage();
        return (rss - heapTotal) / 2 ** 20;
      };
      const samples: number[] = [];
      for (let window = 0; window < 6; window++) {
        for (let i = 0; i < 5; i++) await burst();
        samples.push(outsideHeap());
      }
      const growth = Math.min(...samples.slice(-2)) - Math.min(...samples.slice(0, 2));
      assert.ok(
        growth < 5,
        `memory outside the V8 heap grew ${growth.toFixed(1)} MB (${samples.map((m) => m.toFixed(1))})`,
      );
      await tpm.evict(0x81000012);
    } finally {
      await tpm.close();
    }
    assert.equal(tpm2(swtpm.tcti, 'getcap', 'handles-transient').trim(), '');
    assert.equal(tpm2(swtpm.tcti, 'getcap', 'handles-loaded-session').trim(), '');
  });
});
