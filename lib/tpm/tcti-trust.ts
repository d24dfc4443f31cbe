/**
 * Which TCTI strings a file may name. tpm2-tss's loader turns a TCTI name into a
 * shared library to dlopen, and some TCTIs run a command (`cmd`) or write wherever
 * they are told (`pcap`, `device:` on a regular file). So a TCTI read from a file that
 * may have come from elsewhere (a credentials descriptor, a credential configuration,
 * a server configuration) is limited to the kinds that only talk to a TPM, with their
 * configuration checked, unless the user opts in with TPM_JWT_ALLOW_ANY_TCTI=1. A
 * simulator it names must be on this machine (TPM_JWT_ALLOW_REMOTE_TPM=1 lifts that),
 * and it may not turn parameter encryption off but for a device: the auth value would
 * cross the link in clear, to whatever host the file names. What the user passes
 * directly (the `tcti` option, --tcti, --no-encrypt, TPM2TOOLS_TCTI, TSS2_TCTI) is not
 * checked: it is the user's own choice.
 */
import { realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { invalidArgument, TpmJwtError } from '../errors.js';
import { isLoopback } from '../loopback.js';
import { resolveTcti } from './tcti.js';

/** Set to 1 to let files name any TCTI, on any host, encrypted or not, as the user does directly. */
const ALLOW_ANY_TCTI_ENV = 'TPM_JWT_ALLOW_ANY_TCTI';

/** Set to 1 to let files name a swtpm or mssim on another host (still encrypted). */
const ALLOW_REMOTE_TPM_ENV = 'TPM_JWT_ALLOW_REMOTE_TPM';

/** The device TCTI's own default. */
const DEFAULT_DEVICE = '/dev/tpm0';

type Options = Record<string, string>;

/** Each kind's check; one that rewrites the TCTI (device: its resolved path) returns it. */
type Check = (conf: string, what: string, env: NodeJS.ProcessEnv) => string | void;

/** `key=value,key=value` with only the keys in `allowed`, each at most once. */
function keyValues(conf: string, allowed: readonly string[], what: string): Options {
  const options: Options = {};
  if (conf === '') return options;
  for (const pair of conf.split(',')) {
    const match = /^([a-z_]+)=(.*)$/.exec(pair);
    if (!match || !allowed.includes(match[1]!) || Object.hasOwn(options, match[1]!)) {
      throw invalidArgument(`${what}: expected ${allowed.map((k) => `${k}=...`).join(',')}`);
    }
    options[match[1]!] = match[2]!;
  }
  return options;
}

/**
 * host=H,port=P for the TCP simulators (swtpm also path=, a Unix socket). The host
 * must be loopback unless the user set TPM_JWT_ALLOW_REMOTE_TPM=1; both default to
 * localhost.
 */
function checkSocket(keys: readonly string[]): Check {
  return (conf, what, env) => {
    const { host, port, path: socket } = keyValues(conf, keys, what);
    if (host !== undefined && !/^[A-Za-z0-9.:-]{1,253}$/.test(host)) throw invalidArgument(`${what}: bad host`);
    if (port !== undefined && !(/^[0-9]{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
      throw invalidArgument(`${what}: port must be 1 to 65535`);
    }
    if (socket !== undefined) {
      if (host !== undefined) throw invalidArgument(`${what}: host= or path=, not both`);
      if (!path.isAbsolute(socket)) throw invalidArgument(`${what}: path= must be an absolute path`);
    }
    if (host !== undefined && !isLoopback(host) && env[ALLOW_REMOTE_TPM_ENV] !== '1') {
      throw invalidArgument(
        `${what}: ${host} is not this machine; a file may name only a local TPM simulator ` +
          `(localhost, 127.0.0.0/8, ::1; set ${ALLOW_REMOTE_TPM_ENV}=1 to allow other hosts from files you trust)`,
      );
    }
  };
}

/** bus_name=NAME,bus_type=system|session for the access broker. */
function checkTabrmd(conf: string, what: string): void {
  const options = keyValues(conf, ['bus_name', 'bus_type'], what);
  if (options['bus_name'] !== undefined && !/^[A-Za-z0-9_.-]{1,255}$/.test(options['bus_name'])) {
    throw invalidArgument(`${what}: bad bus_name`);
  }
  if (options['bus_type'] !== undefined && !['system', 'session'].includes(options['bus_type'])) {
    throw invalidArgument(`${what}: bus_type must be system or session`);
  }
}

/**
 * A device path must be a TPM character device (/dev/tpmN or /dev/tpmrmN, possibly
 * through a link): tpm2-tss writes TPM commands to whatever it opens, so a regular
 * file, a FIFO, shared memory or another device (a terminal, the kernel log) would
 * receive them.
 */
function checkDevice(conf: string, what: string): string {
  const device = conf === '' ? DEFAULT_DEVICE : conf;
  if (!path.isAbsolute(device)) throw invalidArgument(`${what}: the device must be an absolute path`);
  let real: string;
  try {
    real = realpathSync(device);
  } catch (err) {
    // Nothing to write to, so nothing to refuse: there simply is no TPM there.
    throw new TpmJwtError('ERR_TPM_CONNECTION', `no TPM device at ${device}`, { cause: err });
  }
  if (!/^\/dev\/tpm(rm)?[0-9]+$/.test(real) || !statSync(real).isCharacterDevice()) {
    throw invalidArgument(`${what}: ${device} is not a TPM character device`);
  }
  // The checked path itself: a link could be pointed elsewhere after the check.
  return `device:${real}`;
}

const CHECKS: Readonly<Record<string, Check>> = {
  device: checkDevice,
  swtpm: checkSocket(['host', 'port', 'path']),
  mssim: checkSocket(['host', 'port']),
  tabrmd: checkTabrmd,
};

/**
 * `tcti` as read from `source` (a file name, for messages): returned when it names
 * device (as the resolved device path), swtpm or mssim on this machine, or tabrmd,
 * with a valid configuration, or unchanged when the user set TPM_JWT_ALLOW_ANY_TCTI=1.
 * Throws ERR_INVALID_ARGUMENT otherwise, before tpm2-tss sees it or anything connects,
 * and ERR_TPM_CONNECTION for a device path where nothing exists.
 */
export function checkTctiFromFile(tcti: unknown, source: string, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof tcti !== 'string') throw invalidArgument(`${source}: tcti must be a string`);
  // Empty: the user's own TPM2TOOLS_TCTI/TSS2_TCTI, else tpm2-tss's fixed search list.
  if (tcti === '' || env[ALLOW_ANY_TCTI_ENV] === '1') return tcti;
  const what = `${source}: tcti '${tcti}'`;
  const colon = tcti.indexOf(':');
  const name = colon === -1 ? tcti : tcti.slice(0, colon);
  const conf = colon === -1 ? '' : tcti.slice(colon + 1);
  const check = Object.hasOwn(CHECKS, name) ? CHECKS[name] : undefined;
  if (!check) {
    throw invalidArgument(
      `${what} is not allowed in a file: it may be device, swtpm, mssim or tabrmd ` +
        `(set ${ALLOW_ANY_TCTI_ENV}=1 to allow any TCTI from files you trust)`,
    );
  }
  return check(conf, what, env) ?? tcti;
}

/**
 * Whether a file may set `encrypt` (false: --no-encrypt) for `tcti`, the TCTI it
 * named as checkTctiFromFile returned it (absent or '': the user's own, from the
 * environment). Encryption may be turned off only for a device: TCTI, or when the user
 * set TPM_JWT_ALLOW_ANY_TCTI=1. Throws ERR_INVALID_ARGUMENT otherwise, before anything
 * connects.
 */
export function checkEncryptFromFile(
  encrypt: boolean | undefined,
  tcti: string | undefined,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (encrypt !== false || env[ALLOW_ANY_TCTI_ENV] === '1') return;
  const effective = resolveTcti(tcti, env);
  if (effective === 'device' || effective.startsWith('device:')) return;
  throw invalidArgument(
    `${source}: a file may turn encryption off (--no-encrypt) only for a device: TCTI, not for ` +
      `${effective === '' ? "tpm2-tss's default search" : `'${effective}'`}: auth values would cross the link ` +
      `in clear (set ${ALLOW_ANY_TCTI_ENV}=1 to allow it from files you trust)`,
  );
}
