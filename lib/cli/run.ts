/** The tpm-jwt command line: dispatch, help, and the one-line error contract. */
import { createRequire } from 'node:module';

import { TpmJwtError } from '../errors.js';
import { parse, UsageError } from './args.js';
import type { Command, Io } from './command.js';
import { cert } from './commands/cert.js';
import { evict } from './commands/evict.js';
import { importCommand } from './commands/import.js';
import { inspect } from './commands/inspect.js';
import { keygen } from './commands/keygen.js';
import { printAccessToken } from './commands/print-access-token.js';
import { pubkey } from './commands/pubkey.js';
import { token } from './commands/token.js';
import { verify } from './commands/verify.js';

const COMMANDS: readonly Command[] = [
  keygen,
  importCommand,
  pubkey,
  cert,
  inspect,
  token,
  printAccessToken,
  verify,
  evict,
];

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
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`error [USAGE]: unknown command '${name}'\n${overview()}`);
    return 2;
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
    const code = err instanceof TpmJwtError ? err.code : 'ERR';
    const message = (err as Error).message.split('\n').join(' ');
    io.err(`error [${code}]: ${message}\n`);
    return 1;
  }
}
