/**
 * A private software TPM for tests: swtpm on a fresh state directory and a free pair of
 * loopback ports, optionally manufactured as a vendor would (EK certificates from a local
 * CA) and with a key made ready. Cleaned up by stop(), and on process exit by itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { KeyObject } from 'node:crypto';

import type { JwsAlgorithm } from '../algorithms.js';
import { freePortPair } from './ports.js';

export const SWTPM_INSTALL_HINT =
  'swtpm is needed for a software TPM: apt-get install swtpm swtpm-tools tpm2-tools (Debian, Ubuntu), ' +
  'dnf install swtpm swtpm-tools tpm2-tools (Fedora, RHEL)';

/** The local CA a manufactured TPM's EK certificates come from. */
export interface ManufacturerCa {
  /** Root certificate, PEM: the trust anchor to verify attestations with. */
  readonly root: string;
  readonly rootFile: string;
  /** The intermediate that issued the EK certificates, PEM (a TPM's NV does not hold it). */
  readonly intermediate: string;
  readonly intermediateFile: string;
  /** The intermediate's private key, for tests that issue more certificates under it. */
  readonly intermediateKeyFile: string;
}

/** A key made when the TPM started. */
export interface ProvisionedKey {
  /** What TpmSigner.open and the CLI take: `handle:0x...` or the key file's path. */
  readonly ref: string;
  readonly alg: JwsAlgorithm;
  readonly publicKey: KeyObject;
}

export interface SoftwareTpmOptions {
  /**
   * Manufacture the TPM as a vendor would: swtpm_setup writes RSA and ECC EKs with
   * certificates in NV, issued by swtpm_localca from a CA in `caDir` (made on first use and
   * reused, so TPMs can share it; default a temporary directory removed by stop()).
   */
  manufacture?: boolean | { caDir: string };
  /** Make a key at start: persisted at `persist`, or else as a key file in the state directory. */
  key?: { alg?: JwsAlgorithm; persist?: number };
  /**
   * false: swtpm comes up (and restarts) powered on but not started, as a chip before its
   * platform's firmware sends TPM2_Startup; its first client must start it. Default true.
   */
  startup?: boolean;
}

export interface SoftwareTpm {
  /** The tctildr string for this TPM. */
  readonly tcti: string;
  readonly stateDir: string;
  /** With `manufacture`: the CA its EK certificates chain to. */
  readonly ca: ManufacturerCa | undefined;
  /** With `key`: the key made at start. */
  readonly key: ProvisionedKey | undefined;
  /** Kills swtpm (SIGKILL, as a crash would) and starts it again on the same state and ports. */
  restart(): Promise<void>;
  /** Kills swtpm as restart() does and leaves it down until start(). */
  kill(): Promise<void>;
  /** Starts swtpm again after kill(). */
  start(): Promise<void>;
  /** Stops swtpm and removes its state (and a temporary CA). */
  stop(): Promise<void>;
  /**
   * Resolves, with how it ended, once swtpm exits without kill(), restart() or stop()
   * asking it to: a crash, or someone else's signal. A long-running simulator stops then,
   * rather than serve a TPM that is gone.
   */
  died(): Promise<string>;
}

/** What process exit must still clean up: swtpm processes and directories. */
const running = new Set<{ child: () => ChildProcess | undefined; dirs: string[] }>();
let exitHook = false;

function cleanUpAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const entry of running) {
      entry.child()?.kill('SIGKILL');
      for (const dir of entry.dirs) rmSync(dir, { recursive: true, force: true });
    }
  });
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

async function spawnSwtpm(stateDir: string, port: number, startup: boolean): Promise<ChildProcess> {
  const child = spawn(
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
      startup ? 'not-need-init,startup-clear' : 'not-need-init',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port + 1))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`swtpm did not start on port ${port}: ${stderr.trim() || 'timeout'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Another process's swtpm may hold these ports: ours then fails to bind and exits,
  // while the probe above reached the other one.
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (child.exitCode !== null || child.signalCode !== null) {
    throw new Error(`swtpm did not start on port ${port}: ${stderr.trim() || 'it exited'}`);
  }
  // A TPM left running keeps no process alive: the exit hook stops it.
  child.unref();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

async function killed(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // Unreferenced since it started: without this a script whose last work is stop() ends before swtpm does.
  child.ref();
  child.kill(signal);
  await exited;
}

/** swtpm_setup's and swtpm_localca's configuration, keeping the CA in `caDir`. */
function writeCaConfig(caDir: string): string {
  const localca = path.join(caDir, 'swtpm-localca.conf');
  writeFileSync(
    localca,
    [
      `statedir = ${caDir}`,
      `signingkey = ${path.join(caDir, 'signkey.pem')}`,
      `issuercert = ${path.join(caDir, 'issuercert.pem')}`,
      `certserial = ${path.join(caDir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  const options = path.join(caDir, 'swtpm-localca.options');
  writeFileSync(options, '--platform-manufacturer tpm-jwt\n--platform-version 1.0\n--platform-model test\n');
  const setup = path.join(caDir, 'swtpm_setup.conf');
  writeFileSync(
    setup,
    [
      'create_certs_tool = swtpm_localca',
      `create_certs_tool_config = ${localca}`,
      `create_certs_tool_options = ${options}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  return setup;
}

/**
 * Manufactures TPM state in `stateDir` with the CA in `caDir`: RSA and ECC EKs and their
 * certificates in NV, as swtpm_setup --create-ek-cert writes them (and, with
 * `ekCertificateFiles`, as DER files in that directory too). Returns the CA.
 */
export function manufacture(stateDir: string, caDir: string, ekCertificateFiles?: string): ManufacturerCa {
  mkdirSync(caDir, { recursive: true });
  const log = path.join(caDir, 'swtpm_setup.log');
  const args = [
    '--tpm2',
    '--create-ek-cert',
    '--create-platform-cert',
    '--tpmstate',
    stateDir,
    '--config',
    writeCaConfig(caDir),
    ...(ekCertificateFiles ? ['--write-ek-cert-files', ekCertificateFiles] : []),
    '--overwrite',
    '--logfile',
    log,
    // As root, swtpm_setup would otherwise run swtpm as the tss user, which cannot
    // write a directory root made.
    ...(process.getuid?.() === 0 ? ['--runas', 'root'] : []),
  ];
  const result = spawnSync('swtpm_setup', args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    let detail = result.error?.message ?? result.stderr;
    try {
      detail += readFileSync(log, 'utf8');
    } catch {
      // no log: swtpm_setup did not start
    }
    throw new Error(`swtpm_setup failed (${SWTPM_INSTALL_HINT}): ${detail}`);
  }
  return manufacturerCa(caDir);
}

/** The CA a manufacture left in `caDir`. */
export function manufacturerCa(caDir: string): ManufacturerCa {
  const rootFile = path.join(caDir, 'swtpm-localca-rootca-cert.pem');
  const intermediateFile = path.join(caDir, 'issuercert.pem');
  return {
    root: readFileSync(rootFile, 'utf8'),
    rootFile,
    intermediate: readFileSync(intermediateFile, 'utf8'),
    intermediateFile,
    intermediateKeyFile: path.join(caDir, 'signkey.pem'),
  };
}

/** Makes the key `options.key` asks for on the TPM at `tcti`. */
async function provision(
  tcti: string,
  stateDir: string,
  wanted: NonNullable<SoftwareTpmOptions['key']>,
): Promise<ProvisionedKey> {
  // Loaded only here: a test that wants no key never loads the addon through this module.
  const { Tpm } = await import('../tpm/tpm.js');
  const alg = wanted.alg ?? 'ES256';
  const tpm = await Tpm.open({ tcti });
  try {
    const key = await tpm.createKey({ alg, ...(wanted.persist !== undefined && { persist: wanted.persist }) });
    if (wanted.persist !== undefined) {
      return { ref: `handle:0x${wanted.persist.toString(16)}`, alg, publicKey: key.publicKey };
    }
    const file = path.join(stateDir, 'key.pem');
    writeFileSync(file, key.toPem(), { mode: 0o600 });
    return { ref: file, alg, publicKey: key.publicKey };
  } finally {
    await tpm.close();
  }
}

/** Starts a software TPM; throws with how to install swtpm when it is missing. */
export async function startSoftwareTpm(options: SoftwareTpmOptions = {}): Promise<SoftwareTpm> {
  if (spawnSync('swtpm', ['--version']).error) throw new Error(SWTPM_INSTALL_HINT);
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-swtpm-'));
  const dirs = [stateDir];
  let child: ChildProcess | undefined;
  const entry = { child: () => child, dirs };
  running.add(entry);
  cleanUpAtExit();
  const removeAll = () => {
    running.delete(entry);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    let ca: ManufacturerCa | undefined;
    if (options.manufacture) {
      let caDir: string;
      if (typeof options.manufacture === 'object') {
        caDir = options.manufacture.caDir;
      } else {
        caDir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-ca-'));
        dirs.push(caDir);
      }
      ca = manufacture(stateDir, caDir);
    }
    // Free ports can be taken between the check and swtpm's bind: a few tries.
    let port = await freePortPair();
    for (let attempt = 1; ; attempt++) {
      try {
        child = await spawnSwtpm(stateDir, port, options.startup !== false);
        break;
      } catch (err) {
        if (attempt === 3) throw err;
        port = await freePortPair();
      }
    }
    const tcti = `swtpm:host=127.0.0.1,port=${port}`;
    const key = options.key ? await provision(tcti, stateDir, options.key) : undefined;
    let death: ((why: string) => void) | undefined;
    const dying = new Promise<string>((resolve) => (death = resolve));
    // Every exit that kill(), restart() and stop() did not ask for is a death.
    const asked = new WeakSet<ChildProcess>();
    const watch = (process: ChildProcess) =>
      process.once('exit', (code, signal) => {
        if (!asked.has(process)) death?.(`swtpm exited (${signal ?? `status ${code}`})`);
      });
    const ending = (signal: NodeJS.Signals) => {
      if (child) asked.add(child);
      return killed(child, signal);
    };
    watch(child!);
    const kill = () => ending('SIGKILL');
    const start = async () => {
      if (child && child.exitCode === null && child.signalCode === null) return;
      child = await spawnSwtpm(stateDir, port, options.startup !== false);
      watch(child);
    };
    return {
      tcti,
      stateDir,
      ca,
      key,
      kill,
      start,
      async restart() {
        await kill();
        await start();
      },
      async stop() {
        await ending('SIGTERM');
        removeAll();
      },
      died: () => dying,
    };
  } catch (err) {
    await killed(child, 'SIGKILL');
    removeAll();
    throw err;
  }
}
