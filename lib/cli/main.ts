#!/usr/bin/env node
import { run } from './run.js';

process.exitCode = await run(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
  async readStdin() {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text;
  },
});
