/**
 * tpm2-abrmd, the user-space resource manager, on a private D-Bus in front of a swtpm:
 * the closest thing to the kernel's /dev/tpmrm0 a machine without a TPM has. Each
 * connection gets its own virtual handles and at most `maxTransients` loaded objects
 * (3, as the kernel's resource manager gives).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export interface Tabrmd {
  /** The tctildr string; a client needs DBUS_SESSION_BUS_ADDRESS = `bus` too. */
  readonly tcti: string;
  readonly bus: string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let started = 0;

async function until(what: string, ready: () => boolean, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ready()) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start`);
    await sleep(50);
  }
}

async function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Starts a D-Bus daemon with its socket in `dir` and tpm2-abrmd on it, relaying to `swtpmTcti`. */
export async function startTabrmd(swtpmTcti: string, dir: string, { maxTransients = 3 } = {}): Promise<Tabrmd> {
  const socket = path.join(dir, 'bus');
  const bus = `unix:path=${socket}`;
  const dbus = spawn('dbus-daemon', ['--session', `--address=${bus}`, '--nofork', '--nopidfile'], {
    stdio: 'ignore',
  });
  try {
    await until('dbus-daemon', () => existsSync(socket), dbus);
    const name = `com.intel.tss2.Tabrmd.T${process.pid}x${++started}`;
    const tcti = `tabrmd:bus_name=${name},bus_type=session`;
    const env = { ...process.env, DBUS_SESSION_BUS_ADDRESS: bus };
    const abrmd = spawn(
      'tpm2-abrmd',
      ['--session', '--allow-root', `--tcti=${swtpmTcti}`, `--dbus-name=${name}`, `--max-transients=${maxTransients}`],
      { env, stdio: 'ignore' },
    );
    const answers = () =>
      spawnSync('tpm2_getcap', ['properties-fixed'], { env: { ...env, TPM2TOOLS_TCTI: tcti }, stdio: 'ignore' })
        .status === 0;
    try {
      await until('tpm2-abrmd', answers, abrmd);
    } catch (err) {
      await stopped(abrmd);
      throw err;
    }
    return {
      tcti,
      bus,
      async stop() {
        await stopped(abrmd);
        await stopped(dbus);
      },
    };
  } catch (err) {
    await stopped(dbus);
    throw err;
  }
}
