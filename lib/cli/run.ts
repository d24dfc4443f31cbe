/** The tpm-jwt command line: dispatch, help, and the one-line error contract. */
import { createRequire } from 'node:module';

import { TpmJwtError } from '../errors.js';
import { parse, UsageError } from './args.js';
import type { Command, Io } from './command.js';
import { COMMANDS } from './commands/index.js';

function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  return pkg.version;
}

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
    io.out(`${version()}\n`);
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
    if (err instanceof UsageError) {
      io.err(`error [USAGE]: ${err.message}\nusage: ${command.usage.split('\n\n')[0]}\n`);
      return 2;
    }
    return failed(err, io);
  }
}

/** The one-line `error [CODE]: message` for a failed command, and its exit code. */
function failed(err: unknown, io: Io): number {
  const code = err instanceof TpmJwtError ? err.code : 'ERR';
  const message = String(err instanceof Error ? err.message : err)
    .split('\n')
    .join(' ');
  io.err(`error [${code}]: ${message}\n`);
  return 1;
}
