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
let count = 0;

/** Spawns `command`; a missing binary is an error here, not a crash of the test run. */
function started(command: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess & { failure?: Error } {
  const child: ChildProcess & { failure?: Error } = spawn(command, args, { env, stdio: 'ignore' });
  child.on('error', (err) => (child.failure = err));
  return child;
}

async function until(what: string, ready: () => boolean, child: ChildProcess & { failure?: Error }): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ready()) {
    if (child.failure) throw new Error(`${what} did not start: ${child.failure.message}`);
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start`);
    await sleep(50);
  }
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
async function stopped(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(killer);
}

/** Starts a D-Bus daemon with its socket in `dir` and tpm2-abrmd on it, relaying to `swtpmTcti`. */
export async function startTabrmd(swtpmTcti: string, dir: string, { maxTransients = 3 } = {}): Promise<Tabrmd> {
  const socket = path.join(dir, 'bus');
  const bus = `unix:path=${socket}`;
  const dbus = started('dbus-daemon', ['--session', `--address=${bus}`, '--nofork', '--nopidfile']);
  try {
    await until('dbus-daemon', () => existsSync(socket), dbus);
    const name = `com.intel.tss2.Tabrmd.T${process.pid}x${++count}`;
    const tcti = `tabrmd:bus_name=${name},bus_type=session`;
    const env = { ...process.env, DBUS_SESSION_BUS_ADDRESS: bus };
    const abrmd = started(
      'tpm2-abrmd',
      ['--session', '--allow-root', `--tcti=${swtpmTcti}`, `--dbus-name=${name}`, `--max-transients=${maxTransients}`],
      env,
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
