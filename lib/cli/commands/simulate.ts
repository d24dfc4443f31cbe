import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { TpmJwtError } from '../../errors.js';
import { cliBin } from '../../package.js';
import { isAlgorithm } from '../../algorithms.js';
import { parsePersistentHandle } from '../../tpm/handle.js';
import {
  CHIP_PROFILES,
  startChipRelay,
  startSoftwareTpm,
  type ChipRelay,
  type Fault,
  type SoftwareTpm,
  TPM_COMMANDS,
  TPM_RESPONSES,
} from '../../testing/index.js';
import { flagValue, optional, UsageError, type Values } from '../args.js';
import { untilSignalled, type Command, type Io } from '../command.js';

const FAULT_KEYS = new Set(['command', 'rc', 'drop', 'stallMs', 'nth', 'every', 'share', 'times']);

/** `command=Sign,rc=RETRY,every=3`: a chip relay fault, field by field. */
function parseFault(text: string): Fault {
  const fault: Record<string, string | number> = {};
  for (const part of text.split(',')) {
    const [key, value] = part.split('=');
    if (!key || value === undefined || !FAULT_KEYS.has(key)) {
      throw new UsageError(`--fault ${text}: expected key=value pairs of ${[...FAULT_KEYS].join(', ')}`);
    }
    const number = Number(value);
    const named = key === 'command' || key === 'drop' || (key === 'rc' && Number.isNaN(number));
    const inRange = key === 'share' ? number >= 0 && number <= 1 : key === 'rc' ? number <= 0xffffffff : true;
    if (!named && (!Number.isInteger(key === 'share' ? 0 : number) || number < 0 || !inRange)) {
      throw new UsageError(
        `--fault ${text}: ${key} must be a ${key === 'share' ? 'share from 0 to 1' : 'whole number'}`,
      );
    }
    fault[key] = named ? value : number;
  }
  if (typeof fault['command'] === 'string' && !Object.hasOwn(TPM_COMMANDS, fault['command'])) {
    throw new UsageError(
      `--fault ${text}: no TPM command ${fault['command']} (names as TPM2_CC_ has them: Sign, Load, ...)`,
    );
  }
  if (typeof fault['rc'] === 'string' && !Object.hasOwn(TPM_RESPONSES, fault['rc'])) {
    throw new UsageError(`--fault ${text}: rc is a number or one of ${Object.keys(TPM_RESPONSES).join(', ')}`);
  }
  if (fault['drop'] !== undefined && fault['drop'] !== 'before' && fault['drop'] !== 'mid-response') {
    throw new UsageError(`--fault ${text}: drop is before or mid-response`);
  }
  return fault as Fault;
}

/** `ES256` or `ES256@0x81000001`: the key to make, as a file or at a handle. */
function parseKey(text: string): { alg: 'RS256' | 'PS256' | 'ES256'; persist?: number } {
  const [alg, handle] = text.split('@');
  if (!isAlgorithm(alg)) throw new UsageError(`--key ${text}: expected RS256, PS256 or ES256, and @HANDLE to persist`);
  return { alg, ...(handle !== undefined && { persist: flagValue('key', handle, parsePersistentHandle) }) };
}

/** `HOST:PORT` or `[V6]:PORT`: where the relay listens. */
function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !(port > 0 && port < 65535))
    throw new UsageError(`--listen ${text}: expected HOST:PORT (PORT and PORT+1)`);
  return { host: (match[1] ?? match[2])!, port };
}

/** What the shell is told: the TCTI, and where the CA and the key are. */
function describe(tpm: SoftwareTpm | undefined, tcti: string, env: boolean): string {
  const vars: [string, string][] = [['TPM2TOOLS_TCTI', tcti]];
  if (tpm?.ca) vars.push(['TPM_JWT_EK_ROOT', tpm.ca.rootFile], ['TPM_JWT_EK_CHAIN', tpm.ca.intermediateFile]);
  if (tpm?.key) vars.push(['TPM_JWT_KEY', tpm.key.ref]);
  if (!env)
    return vars.map(([name, value]) => (name === 'TPM2TOOLS_TCTI' ? value : `${name}=${value}`)).join('\n') + '\n';
  return vars.map(([name, value]) => `export ${name}='${value.replace(/'/g, `'\\''`)}'`).join('\n') + '\n';
}

/** Runs the simulator until SIGTERM or SIGINT, printing what to point at it once it is up. */
async function simulate(values: Values, io: Io): Promise<void> {
  const profile = optional(values, 'profile');
  if (profile !== undefined && !(profile in CHIP_PROFILES)) {
    throw new UsageError(`--profile ${profile}: one of ${Object.keys(CHIP_PROFILES).join(', ')}`);
  }
  const faults = ((values['fault'] as string[] | undefined) ?? []).map(parseFault);
  const keyFlag = optional(values, 'key');
  const given = optional(values, 'tcti');
  const listenFlag = optional(values, 'listen');
  const listen = listenFlag === undefined ? undefined : parseListen(listenFlag);
  const relayed = profile !== undefined || faults.length > 0;
  if (given !== undefined && (keyFlag !== undefined || values['manufacture'] !== undefined)) {
    throw new UsageError(
      '--tcti names a TPM that is already made: --manufacture and --key apply to the one simulate starts',
    );
  }
  if ((given !== undefined || listen !== undefined) && !relayed) {
    throw new UsageError(
      `--${given !== undefined ? 'tcti' : 'listen'} is for the chip relay: give --profile or --fault`,
    );
  }
  const tpm =
    given === undefined
      ? await startSoftwareTpm({
          manufacture: values['manufacture'] === true,
          ...(keyFlag !== undefined && { key: parseKey(keyFlag) }),
        })
      : undefined;
  let relay: ChipRelay | undefined;
  try {
    if (relayed) {
      relay = await startChipRelay({
        tcti: given ?? tpm!.tcti,
        ...(profile !== undefined && { profile: profile as keyof typeof CHIP_PROFILES }),
        faults,
        ...(listen !== undefined && { listen }),
      });
    }
    io.out(describe(tpm, relay?.tcti ?? tpm!.tcti, values['env'] === true));
    // A TPM that died is no TPM to point at: stop, and say so, rather than relay to nothing.
    const died = tpm?.died().then((why) => Promise.reject(new TpmJwtError('ERR_TPM_CONNECTION', why)));
    await untilSignalled(died);
  } finally {
    await relay?.close();
    await tpm?.stop();
  }
}

/**
 * --daemon: the same command again, detached, and this one returns once it prints what to
 * export, with its pid to stop it by.
 */
async function daemonize(values: Values, io: Io): Promise<void> {
  const args = ['simulate'];
  for (const flag of ['manufacture', 'env']) if (values[flag] === true) args.push(`--${flag}`);
  for (const flag of ['key', 'profile', 'tcti', 'listen']) {
    const value = optional(values, flag);
    if (value !== undefined) args.push(`--${flag}`, value);
  }
  for (const fault of (values['fault'] as string[] | undefined) ?? []) args.push('--fault', fault);
  // This same CLI: built, or its source under a TypeScript loader (execArgv carries it).
  const main = import.meta.url.endsWith('.ts') ? fileURLToPath(new URL('../main.ts', import.meta.url)) : cliBin();
  const child = spawn(process.execPath, [...process.execArgv, main, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  // The simulator prints what to export in one write, once the TPM is up.
  const started = await new Promise<boolean>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      resolve(true);
    });
    child.once('exit', () => resolve(false));
  });
  if (!started) throw new TpmJwtError('ERR_TPM_CONNECTION', `the simulator did not start: ${err.trim()}`);
  child.stdout.destroy();
  child.stderr.destroy();
  child.unref();
  io.out(`${out}${values['env'] === true ? `export TPM_JWT_SIMULATE_PID='${child.pid}'` : `pid ${child.pid}`}\n`);
}

export const simulateCommand: Command = {
  usage: `tpm-jwt simulate [--manufacture] [--key ALG[@HANDLE]] [--profile discrete-spi|fast-firmware]
                 [--fault command=NAME,(rc=CODE|drop=before|drop=mid-response|stallMs=N)
                          [,nth=N|every=N|share=P][,times=N] ...]
                 [--tcti TCTI] [--listen HOST:PORT] [--env] [--daemon]

Starts a software TPM (swtpm on free loopback ports, state in a temporary directory) and
prints its TCTI; keeps running until SIGTERM or SIGINT, then removes it. --manufacture
gives it EK certificates from a local CA (TPM_JWT_EK_ROOT, TPM_JWT_EK_CHAIN: the files
to pass verify-attestation --ca and attest --ek-chain); --key makes a key, as a key file
or persisted at HANDLE (TPM_JWT_KEY). --profile and --fault put a chip relay in front:
each command takes as long as on that kind of chip, and the faults answer, cut or stall
the commands they match (rc takes a name such as RETRY, YIELDED, TESTING, NV_RATE,
LOCKOUT, or a number). --tcti puts the relay in front of a TPM that is already running
instead of starting one (a swtpm container, say); --listen is where the relay listens
(PORT and PORT+1, as swtpm; loopback on free ports by default, and every machine that
reaches another address gets the TPM). --env prints export lines; --daemon returns once
it is up, the simulator running on (stop it with kill $TPM_JWT_SIMULATE_PID).

  tpm-jwt simulate --manufacture --key ES256@0x81000001
  eval "$(npx tpm-jwt simulate --env --daemon --manufacture --key ES256)"
  npx tpm-jwt simulate --profile discrete-spi --fault command=Sign,rc=RETRY,every=3
  tpm-jwt simulate --tcti swtpm:host=swtpm,port=2321 --profile discrete-spi --listen 0.0.0.0:2421`,
  options: {
    manufacture: { type: 'boolean' },
    key: { type: 'string' },
    profile: { type: 'string' },
    fault: { type: 'string', multiple: true },
    tcti: { type: 'string' },
    listen: { type: 'string' },
    env: { type: 'boolean' },
    daemon: { type: 'boolean' },
  },
  async run(values, io) {
    if (values['daemon'] === true) return daemonize(values, io);
    return simulate(values, io);
  },
};
