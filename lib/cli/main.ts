#!/usr/bin/env node
/** The CLI in a process of its own: argv, the standard streams and the exit code. */
import { run } from './run.js';

void run(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  },
}).then((code) => {
  process.exitCode = code;
});
