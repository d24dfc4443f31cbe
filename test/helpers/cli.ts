/**
 * Runs the tpm-jwt CLI from source: in this process through its Io seam (most tests:
 * no Node start-up per call), or as a real child process (the tests that prove the
 * binary's exit codes and streams).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { run } from '../../lib/cli/run.js';
import { cliBin } from '../../lib/package.js';
import { overlayEnv } from './env.js';

const MAIN = fileURLToPath(new URL('../../lib/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI run in this process, as `tpm-jwt ARGS` with `env` added and `input` on stdin. */
export async function cli(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const restore = overlayEnv(env);
  try {
    const code = await run(args, {
      out: (text) => void (stdout += text),
      err: (text) => void (stderr += text),
      env: process.env,
      readStdin: async () => Buffer.from(input ?? ''),
    });
    return { code, stdout, stderr };
  } finally {
    restore();
  }
}

/** The same as a child process: `node --import tsx lib/cli/main.ts ARGS`. */
export function spawnCli(args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** The one-line failure contract: `error [CODE]: message` and the exit code. */
export function assertFails(result: CliResult, exit: number, code: string): void {
  assert.equal(result.code, exit, result.stderr);
  assert.match(result.stderr.split('\n')[0]!, new RegExp(`^error \\[${code}\\]: \\S`));
}

/** A long-running command (a server) started from the built CLI, until stop(). */
export interface CliServer {
  /** The first line it printed on stdout: its URL, or what to export. */
  readonly line: string;
  /** SIGTERM, then its exit code (0 when it drained as it should). */
  stop(): Promise<number | null>;
}

/** Runs `tpm-jwt ARGS` (dist/, as installed) until it prints its first line. */
export async function startCliServer(args: string[], env: Record<string, string> = {}): Promise<CliServer> {
  const child = spawn(process.execPath, [cliBin(), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return {
    line,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
