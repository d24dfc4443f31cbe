/** What a CLI command is, and the TPM session every command runs in. */
import { usingTpm, type Tpm, type TpmOpenOptions } from '../tpm/tpm.js';
import { optional, type OptionSpec, type Values } from './args.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  readonly env: NodeJS.ProcessEnv;
  /** All of standard input, as bytes (a signed blob must be exactly what was sent). */
  readStdin(): Promise<Uint8Array>;
}

/** A command's usage, options and work; its name and summary are in commands/index.ts. */
export interface Command {
  /** Usage lines and examples, shown by --help and after a usage error. */
  readonly usage: string;
  readonly options: OptionSpec;
  /** Whether the command takes positional arguments. */
  readonly positionals?: boolean;
  run(values: Values, io: Io, positionals: string[]): Promise<void>;
  /**
   * Reports a failure where the command's callers look for it (wif-token: JSON on
   * stdout), with the code and message the `error [CODE]: message` line shows.
   */
  reportFailure?(code: string, message: string, io: Io): void;
}

/** The Tpm.open options --tcti and --no-encrypt ask for. */
export function tpmOptions(values: Values): TpmOpenOptions {
  const tcti = optional(values, 'tcti');
  return { ...(tcti !== undefined && { tcti }), encrypt: values['no-encrypt'] !== true };
}

/** Opens the TPM named by --tcti (or the environment), runs `fn`, and closes it. */
export function withTpm<T>(values: Values, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  return usingTpm(tpmOptions(values), fn);
}

export const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/**
 * Resolves on SIGTERM or SIGINT: how a long-running command (a server, a simulator) waits
 * to drain and exit 0. It holds the process alive meanwhile. Rejects with `failure`'s
 * error if that comes first (what the command serves went away).
 */
export function untilSignalled(failure?: Promise<never>): Promise<void> {
  const alive = setInterval(() => undefined, 1 << 30);
  return new Promise<void>((resolve, reject) => {
    const stop = (err?: unknown) => {
      process.off('SIGTERM', signalled);
      process.off('SIGINT', signalled);
      clearInterval(alive);
      if (err === undefined) resolve();
      else reject(err);
    };
    const signalled = () => stop();
    process.on('SIGTERM', signalled);
    process.on('SIGINT', signalled);
    failure?.catch(stop);
  });
}
