/** Command-line parsing shared by every command: flags, usage errors, KEYREF. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { TpmJwtError } from '../errors.js';
import { parsePersistentHandle } from '../tpm/handle.js';
import { parsePcrs } from '../tpm/pcrs.js';
import type { LoadKeyOptions } from '../tpm/tpm.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** A mistake in how the command was called: exit code 2, with the usage. */
export class UsageError extends Error {
  override name = 'UsageError';

  /** By name: a command module may come from another copy of this one (see TpmJwtError). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof Error && value.name === 'UsageError';
  }
}

/** Options every command takes. */
export const COMMON_OPTIONS = {
  tcti: { type: 'string' },
  'no-encrypt': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export type Values = Record<string, string | boolean | string[] | undefined>;

export function parse(argv: string[], options: OptionSpec, positionals = false) {
  try {
    return parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function required(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

export function optional(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Parses a flag's value; a value the parser rejects (ERR_INVALID_ARGUMENT) is a usage
 * error (exit 2) naming the flag.
 */
export function flagValue<T>(name: string, value: string, parse: (value: string) => T): T {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof TpmJwtError && err.code === 'ERR_INVALID_ARGUMENT') {
      throw new UsageError(`--${name} ${value}: ${err.message}`);
    }
    throw err;
  }
}

/** Where a new key goes: exactly one of --persist HANDLE or --out FILE, and --force. */
export function keyDestination(values: Values): { persist?: number; out?: string; force: boolean } {
  const out = optional(values, 'out');
  const persist = optional(values, 'persist');
  if ((out === undefined) === (persist === undefined)) {
    throw new UsageError('give exactly one of --persist or --out');
  }
  return {
    ...(out !== undefined && { out }),
    ...(persist !== undefined && { persist: flagValue('persist', persist, parsePersistentHandle) }),
    force: values['force'] === true,
  };
}

/** --auth-env and --pcrs: how a --key is authorised, for loadKey. */
export const KEY_USE_OPTIONS = {
  'auth-env': { type: 'string' },
  pcrs: { type: 'string' },
} as const satisfies OptionSpec;

/** The LoadKeyOptions --auth-env and --pcrs give. */
export function keyUse(values: Values, env: NodeJS.ProcessEnv): LoadKeyOptions {
  const auth = authFromEnv(values, env);
  const pcrs = optional(values, 'pcrs');
  return {
    ...(auth !== undefined && { auth }),
    ...(pcrs !== undefined && { pcrs: flagValue('pcrs', pcrs, parsePcrs) }),
  };
}

/** The value of the environment variable named by --auth-env (never a password on argv). */
export function authFromEnv(values: Values, env: NodeJS.ProcessEnv): string | undefined {
  const name = optional(values, 'auth-env');
  if (name === undefined) return undefined;
  const value = env[name];
  if (value === undefined) throw new UsageError(`--auth-env ${name}: the variable is not set`);
  return value;
}

/** --listen HOST:PORT (an IPv6 host in brackets), or `fallback` when not given. UsageError when malformed. */
export function listenAddress(values: Values, fallback: string): { host: string; port: number } {
  const listen = optional(values, 'listen') ?? fallback;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new UsageError(`--listen ${listen}: expected HOST:PORT, as ${fallback}`);
  return { host: (match[1] ?? match[2])!, port };
}
