/** The tpm-jwt command line: dispatch, help, and the one-line error contract. */
import { TpmJwtError } from '../errors.js';
import { packageVersion } from '../package.js';
import { parse, UsageError } from './args.js';
import type { Command, Io } from './command.js';
import { COMMANDS } from './commands/index.js';

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: tpm-jwt <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --tcti TCTI (default: TPM2TOOLS_TCTI, TSS2_TCTI, then',
    "tpm2-tss's search) and --no-encrypt. `tpm-jwt <command> --help` for details.",
    '',
  ].join('\n');
}

/** Runs the CLI and returns the exit code: 0 ok, 1 failure, 2 usage. */
export async function run(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    io.out(`${packageVersion()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.err(`error [USAGE]: unknown command '${name}'\n${overview()}`);
    return 2;
  }
  let command: Command;
  try {
    command = await entry.load();
  } catch (err) {
    // A command whose modules cannot load (an optional dependency missing).
    return failed(err, io);
  }
  try {
    const { values, positionals } = parse(rest, command.options, command.positionals);
    if (values['help']) {
      io.out(`${command.usage}\n`);
      return 0;
    }
    await command.run(values, io, positionals);
    return 0;
  } catch (err) {
    return failed(err, io, command);
  }
}

/**
 * The one-line `error [CODE]: message` for a failed command (USAGE and the usage for a
 * usage error), in the CLI's terms; the command's own report carries the same code and
 * message. Returns the exit code: 2 for a usage error, else 1.
 */
function failed(err: unknown, io: Io, command?: Command): number {
  const usage = err instanceof UsageError;
  const code = usage ? 'USAGE' : err instanceof TpmJwtError ? err.code : 'ERR';
  const message = String(err instanceof Error ? err.message : err)
    .split('\n')
    .join(' ');
  command?.reportFailure?.(code, message, io);
  io.err(`error [${code}]: ${message}\n${usage && command ? `usage: ${command.usage.split('\n\n')[0]}\n` : ''}`);
  return usage ? 2 : 1;
}
