/**
 * Starts a private software TPM (swtpm) on a fresh state directory and a free pair of
 * loopback ports: what the tests, the demo and the benchmarks run against when no
 * TPM is given.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const INSTALL_HINT =
  'swtpm is required for the TPM tests: apt-get install swtpm swtpm-tools tpm2-tools ' +
  '(or set TPM_JWT_TEST_TCTI to an existing TPM)';

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * swtpm takes the server port and the control port right above it. They are picked
 * below Linux's ephemeral range (32768 and up): the swtpm TCTI opens a connection per
 * command, so a busy test run leaves thousands of connections in TIME-WAIT on
 * ephemeral ports, and a pair picked there is often half taken.
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10000 + 2 * Math.floor(Math.random() * 11000);
    if ((await portIsFree(port)) && (await portIsFree(port + 1))) return port;
  }
  throw new Error('no free pair of consecutive TCP ports on 127.0.0.1');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface Swtpm {
  readonly tcti: string;
  readonly stateDir: string;
  /**
   * Kills swtpm (SIGKILL, as a crash would) and starts it again on the same state and
   * ports: persistent objects survive, sessions and transient objects do not.
   */
  restart(): Promise<void>;
  /** Kills swtpm as restart() does, and starts it again only when the returned function is called. */
  crash(): Promise<() => Promise<void>>;
  stop(): Promise<void>;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

async function spawnSwtpm(stateDir: string, port: number): Promise<Running> {
  const child: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port + 1))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`swtpm did not start on port ${port}: ${stderr.trim() || 'timeout'}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, exited };
}

async function kill(running: Running, signal: NodeJS.Signals): Promise<void> {
  if (running.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill(signal);
    await running.exited;
  }
}

/** Starts swtpm on a fresh state directory; throws with the install hint if it cannot. */
export async function startSwtpm(): Promise<Swtpm> {
  if (spawnSync('swtpm', ['--version']).error) throw new Error(INSTALL_HINT);
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-swtpm-'));
  const port = await freePortPair();
  let running: Running;
  try {
    running = await spawnSwtpm(stateDir, port);
  } catch (err) {
    rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  const crash = async () => {
    await kill(running, 'SIGKILL');
    return async () => {
      running = await spawnSwtpm(stateDir, port);
    };
  };
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    stateDir,
    async restart() {
      await (
        await crash()
      )();
    },
    crash,
    async stop() {
      await kill(running, 'SIGTERM');
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
