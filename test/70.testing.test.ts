/**
 * tpm-jwt/testing, as a project that installs tpm-jwt uses it: a software TPM that starts,
 * restarts and cleans up after itself, manufactured with EK certificates and a key ready;
 * and a chip relay whose every fault is seen by tpm2-tools (ESYS with no tpm-jwt code in
 * between) as configured.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verify } from 'node:crypto';

import { attestKey, TpmSigner, verifyAttestation } from '../lib/index.js';
import {
  freePortPair,
  startChipRelay,
  startSoftwareTpm,
  type ChipRelay,
  type SoftwareTpm,
} from '../lib/testing/index.js';

/** Runs a tpm2-tools command against `tcti` without blocking the event loop (a relay may run on it). */
function tpm2(tcti: string, command: string, ...args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(`tpm2_${command}`, args, {
      env: { ...process.env, TPM2TOOLS_TCTI: tcti },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (status) => resolve({ status, stderr }));
  });
}

describe('70 tpm-jwt/testing', function () {
  this.timeout(60_000);

  describe('startSoftwareTpm', () => {
    it('starts a TPM tools can use, survives restart() and kill()/start(), is gone after stop()', async () => {
      const tpm = await startSoftwareTpm({ key: { alg: 'ES256', persist: 0x81000095 } });
      try {
        assert.equal(tpm.key?.ref, 'handle:0x81000095');
        assert.equal((await tpm2(tpm.tcti, 'getrandom', '8')).status, 0);
        await tpm.restart();
        await tpm.kill();
        assert.notEqual((await tpm2(tpm.tcti, 'getrandom', '8')).status, 0, 'answered while killed');
        await tpm.start();
        const signer = await TpmSigner.open({ key: tpm.key!.ref, tcti: tpm.tcti });
        const message = Buffer.from('after a restart');
        const signature = await signer.sign(message);
        await signer.close();
        assert.ok(verify('sha256', message, { key: tpm.key!.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
      } finally {
        await tpm.stop();
      }
      assert.equal(existsSync(tpm.stateDir), false);
    });

    it('died() tells a crash from a kill(), restart() or stop() that was asked for', async () => {
      const tpm = await startSoftwareTpm();
      const settled = (ms: number) =>
        Promise.race([tpm.died(), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms))]);
      try {
        await tpm.restart();
        await tpm.kill();
        await tpm.start();
        assert.equal(await settled(300), undefined, 'a restart or kill that was asked for is no death');
        // As a crash, or another process's signal, would end it.
        spawnSync('pkill', ['-KILL', '-f', `dir=${tpm.stateDir}`]);
        assert.match((await settled(5_000)) ?? 'still alive', /^swtpm exited \(SIGKILL\)$/);
      } finally {
        await tpm.stop();
      }
    });

    it('makes a key file when no handle is given', async () => {
      const tpm = await startSoftwareTpm({ key: { alg: 'RS256' } });
      try {
        assert.equal(path.dirname(tpm.key!.ref), tpm.stateDir);
        const signer = await TpmSigner.open({ key: tpm.key!.ref, tcti: tpm.tcti });
        assert.equal(signer.algorithm, 'RS256');
        await signer.close();
      } finally {
        await tpm.stop();
      }
    });

    it('manufactures EK certificates whose CA verifies an attestation', async () => {
      const tpm = await startSoftwareTpm({ manufacture: true, key: { alg: 'ES256' } });
      try {
        const ca = tpm.ca!;
        const doc = await attestKey({ tcti: tpm.tcti, key: tpm.key!.ref, ekChain: ca.intermediate });
        const verdict = await verifyAttestation(doc, { roots: ca.root });
        assert.equal(verdict.reasons.find((r) => r.check === 'ek-certificate')?.ok, true);
      } finally {
        await tpm.stop();
      }
    });

    it('cleans up by itself when the process exits without stop()', () => {
      const lib = fileURLToPath(new URL('../lib/testing/index.ts', import.meta.url));
      const script = `
        const { startSoftwareTpm } = await import(${JSON.stringify(lib)});
        const tpm = await startSoftwareTpm();
        console.log(tpm.stateDir);`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const stateDir = run.stdout.trim();
      assert.equal(existsSync(stateDir), false, `${stateDir} was left behind`);
      const left = spawnSync('pgrep', ['-f', `dir=${stateDir}`]);
      assert.notEqual(left.status, 0, 'its swtpm still runs');
    });

    it('keeps a script alive until stop() has stopped swtpm, so what follows it runs', () => {
      const lib = fileURLToPath(new URL('../lib/testing/index.ts', import.meta.url));
      const script = `
        const { startSoftwareTpm } = await import(${JSON.stringify(lib)});
        const tpm = await startSoftwareTpm();
        tpm.stop().then(() => console.log('stopped'));`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout.trim(), 'stopped');
    });

    it('says how to install swtpm when it is missing', () => {
      const bin = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-path-'));
      symlinkSync(process.execPath, path.join(bin, 'node'));
      const lib = fileURLToPath(new URL('../lib/testing/index.ts', import.meta.url));
      const script = `
        const { startSoftwareTpm } = await import(${JSON.stringify(lib)});
        await startSoftwareTpm().catch((err) => console.log(err.message));`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        // A PATH with node and nothing else on it.
        env: { ...process.env, PATH: bin },
      });
      rmSync(bin, { recursive: true, force: true });
      assert.match(run.stdout, /apt-get install swtpm swtpm-tools/);
    });
  });

  it('tpm-jwt simulate --env --daemon: exports to eval, a manufactured TPM with faults, gone on kill', async () => {
    const main = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url));
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        'simulate',
        '--env',
        '--daemon',
        '--manufacture',
        '--key',
        'ES256',
        '--fault',
        'command=GetRandom,rc=LOCKOUT,nth=1',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(run.status, 0, run.stderr);
    const env = Object.fromEntries(
      [...run.stdout.matchAll(/^export (\w+)='([^']*)'$/gm)].map((match) => [match[1]!, match[2]!]),
    );
    assert.deepEqual(Object.keys(env).sort(), [
      'TPM2TOOLS_TCTI',
      'TPM_JWT_EK_CHAIN',
      'TPM_JWT_EK_ROOT',
      'TPM_JWT_KEY',
      'TPM_JWT_SIMULATE_PID',
    ]);
    const pid = Number(env['TPM_JWT_SIMULATE_PID']);
    try {
      const first = await tpm2(env['TPM2TOOLS_TCTI']!, 'getrandom', '4');
      assert.match(first.stderr, /0x921/);
      assert.equal((await tpm2(env['TPM2TOOLS_TCTI']!, 'getrandom', '4')).status, 0);
      const doc = await attestKey({
        tcti: env['TPM2TOOLS_TCTI']!,
        key: env['TPM_JWT_KEY']!,
        ekChain: readFileSync(env['TPM_JWT_EK_CHAIN']!, 'utf8'),
      });
      const roots = readFileSync(env['TPM_JWT_EK_ROOT']!, 'utf8');
      const verdict = await verifyAttestation(doc, { roots });
      assert.equal(verdict.reasons.find((r) => r.check === 'ek-certificate')?.ok, true);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    for (let i = 0; i < 100 && existsSync(path.dirname(env['TPM_JWT_KEY']!)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(existsSync(path.dirname(env['TPM_JWT_KEY']!)), false, 'the state outlived the simulator');
  });

  it('tpm-jwt simulate stops, and says why, when its swtpm dies under it', async () => {
    const main = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'simulate', '--key', 'ES256'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const key = await new Promise<string>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /^TPM_JWT_KEY=(.*)$/m.exec(out);
        if (match) resolve(match[1]!);
      }),
    );
    spawnSync('pkill', ['-KILL', '-f', `dir=${path.dirname(key)}`]);
    assert.equal(await exited, 1);
    assert.match(err, /^error \[ERR_TPM_CONNECTION\]: swtpm exited \(SIGKILL\)/);
    assert.equal(existsSync(path.dirname(key)), false, 'its state is removed all the same');
  });

  it('tpm-jwt simulate refuses a fault it cannot apply, naming what it takes', () => {
    const main = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url));
    for (const fault of ['command=Sgn,rc=RETRY', 'command=Sign,rc=SOMETIMES', 'command=Sign,every=often']) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', main, 'simulate', '--fault', fault], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(run.status, 2, `${fault}: ${run.stderr}`);
      assert.match(run.stderr, /--fault/);
    }
  });

  it('tpm-jwt simulate --tcti --listen: a chip relay in front of a running TPM, listening where told', async () => {
    const main = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url));
    const own = await startSoftwareTpm();
    const port = await freePortPair();
    const args = ['--tcti', own.tcti, '--profile', 'fast-firmware', '--listen', `127.0.0.1:${port}`];
    const run = spawnSync(process.execPath, ['--import', 'tsx', main, 'simulate', '--env', '--daemon', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    try {
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^export TPM2TOOLS_TCTI='swtpm:host=127\\.0\\.0\\.1,port=${port}'$`, 'm'));
      assert.doesNotMatch(run.stdout, /TPM_JWT_KEY|TPM_JWT_EK_ROOT/, 'it made no TPM of its own');
      assert.equal((await tpm2(`swtpm:host=127.0.0.1,port=${port}`, 'getrandom', '4')).status, 0);
    } finally {
      const pid = /TPM_JWT_SIMULATE_PID='(\d+)'/.exec(run.stdout)?.[1];
      if (pid) process.kill(Number(pid), 'SIGTERM');
      await own.stop();
    }
    for (const [wrong, why] of [
      [['--tcti', own.tcti], /--tcti is for the chip relay/],
      [['--tcti', own.tcti, '--profile', 'fast-firmware', '--manufacture'], /--manufacture and --key apply/],
      [['--profile', 'fast-firmware', '--listen', 'nowhere'], /--listen nowhere: expected HOST:PORT/],
    ] as const) {
      const refused = spawnSync(process.execPath, ['--import', 'tsx', main, 'simulate', ...wrong], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, why);
    }
  });

  describe('startChipRelay', () => {
    let tpm: SoftwareTpm;
    let relay: ChipRelay;
    before(async () => {
      tpm = await startSoftwareTpm();
      relay = await startChipRelay({ tcti: tpm.tcti, seed: 95 });
    });
    after(async () => {
      await relay.close();
      await tpm.stop();
    });
    beforeEach(() => {
      relay.setFaults([]);
      relay.setProfile(undefined);
      relay.clear();
    });

    it('answers in the TPM place with a response code: ESYS retries TPM_RC_RETRY, reports TPM_RC_LOCKOUT', async () => {
      relay.setFaults([{ command: 'GetRandom', rc: 'RETRY', times: 2 }]);
      assert.equal((await tpm2(relay.tcti, 'getrandom', '8')).status, 0);
      assert.deepEqual(
        relay.log.filter((r) => r.command === 'GetRandom').map((r) => r.rc),
        [0x922, 0x922, 0],
      );
      relay.setFaults([{ command: 'GetRandom', rc: 'LOCKOUT' }]);
      const locked = await tpm2(relay.tcti, 'getrandom', '8');
      assert.notEqual(locked.status, 0);
      assert.match(locked.stderr, /0x921|lockout/i);
    });

    it('fires on the Nth, every Nth, and a seeded share of matching commands', async () => {
      type Faults = Parameters<ChipRelay['setFaults']>[0];
      const run = async (fault: Faults[number] | Faults, calls: number) => {
        relay.clear();
        relay.setFaults(Array.isArray(fault) ? fault : [fault]);
        const statuses: (number | null)[] = [];
        for (let i = 0; i < calls; i++) statuses.push((await tpm2(relay.tcti, 'getrandom', '4')).status);
        return statuses.map((status) => (status === 0 ? '.' : 'x')).join('');
      };
      assert.equal(await run({ command: 'GetRandom', nth: 2, rc: 'NV_RATE' }, 4), '.x..');
      assert.equal(await run({ command: 'GetRandom', every: 2, rc: 'CANCELED' }, 4), '.x.x');
      const share = await run({ command: 'GetRandom', share: 0.5, rc: 0x101 }, 12);
      assert.ok(share.includes('x') && share.includes('.'), share);
      // Each fault counts every command it matches, whichever fired.
      const both: Faults = [
        { command: 'GetRandom', nth: 1, rc: 'NV_RATE' },
        { command: 'GetRandom', nth: 2, rc: 'CANCELED' },
      ];
      assert.equal(await run(both, 3), 'xx.');
      // Other commands never match a fault for GetRandom.
      assert.equal(await run({ command: 'Sign', rc: 'LOCKOUT' }, 2), '..');
    });

    it('cuts the connection before the command or in the middle of its response, and the next one works', async () => {
      for (const drop of ['before', 'mid-response'] as const) {
        relay.clear();
        relay.setFaults([{ command: 'GetRandom', nth: 1, drop }]);
        const cut = await tpm2(relay.tcti, 'getrandom', '8');
        assert.notEqual(cut.status, 0, drop);
        assert.equal(relay.log.find((r) => r.command === 'GetRandom')?.rc, undefined);
        assert.equal((await tpm2(relay.tcti, 'getrandom', '8')).status, 0, `after ${drop}`);
      }
    });

    it('stalls a command, and charges a profile per command, one command at a time', async () => {
      relay.setFaults([{ command: 'GetRandom', nth: 1, stallMs: 300 }]);
      assert.equal((await tpm2(relay.tcti, 'getrandom', '8')).status, 0);
      const stalled = relay.log.find((r) => r.command === 'GetRandom')!;
      assert.equal(stalled.fault, 'stall 300 ms');
      assert.ok(stalled.end - stalled.start >= 295, `${stalled.end - stalled.start} ms`);

      relay.clear();
      relay.setFaults([]);
      relay.setProfile({ default: 2, GetRandom: 40 });
      await Promise.all([tpm2(relay.tcti, 'getrandom', '8'), tpm2(relay.tcti, 'getrandom', '8')]);
      assert.equal(relay.count('GetRandom'), 2);
      assert.equal(relay.tpmTime(), 40 * 2 + 2 * (relay.count() - 2));
      // A chip runs one command at a time: the second is done 40 ms after the first is, so
      // 80 ms after the first began. (Its own end may be logged late; the later one's is not early.)
      const [a, b] = relay.log.filter((r) => r.command === 'GetRandom');
      assert.ok(b!.end - a!.start >= 80, `${b!.end - a!.start} ms from the first start to the second end`);
    });

    it("records tpm-jwt's own commands: a sign with a persistent key", async () => {
      const setup = await startSoftwareTpm({ key: { alg: 'ES256', persist: 0x81000096 } });
      const chip = await startChipRelay({ tcti: setup.tcti, profile: 'discrete-spi' });
      try {
        const signer = await TpmSigner.open({ key: setup.key!.ref, tcti: chip.tcti, encrypt: false });
        chip.clear();
        await signer.sign(Buffer.from('one'));
        // swtpm answers the first Sign after startup TPM_RC_RETRY, as chips may; ESYS sends it again.
        assert.deepEqual(
          chip.log.filter((r) => r.command === 'Sign').map((r) => r.rc),
          [0x922, 0],
        );
        chip.clear();
        await signer.sign(Buffer.from('two'));
        assert.equal(chip.count('Sign'), 1);
        assert.equal(chip.count('CreatePrimary'), 0);
        await signer.close();
      } finally {
        await chip.close();
        await setup.stop();
      }
    });
  });
});
