/**
 * `tpm-jwt serve-metadata` answering a cached token under load, against a bare node:http
 * server that sends the same status, headers and body (bench/bare-server.ts). Each server
 * is a process of its own and autocannon a third, so that on a two-core machine the load
 * generator is never what limits the figure. The metadata server runs as users run it,
 * from the CLI with a TPM key, its JSON line per request written to a file; the bench
 * checks afterwards that every answered request has its line. Beside it, what
 * google-auth-library's own metadata client (gcp-metadata) sees of each server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { CLI, compared, ES256_HANDLE, HERE, median, type Bench, type Row } from './common.js';

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';
const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
const CONNECTIONS = 50;

/** Headers node:http adds to every answer by itself; the bare server gets them the same way. */
const AUTOMATIC = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

/** The first line `child` prints on `stream`. */
function firstLine(child: ChildProcess, stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before it was ready`)));
    child.once('error', reject);
  });
}

/** SIGTERM, then resolves once the process has exited; rejects when it exits other than 0. */
function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a server exited ${code}`))));
    child.kill('SIGTERM');
  });
}

/** One GET of the token path: status, headers (less node:http's own) and body. */
function fetchToken(port: number): Promise<{ headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { 'metadata-flavor': 'Google' };
    get({ host: '127.0.0.1', port, path: TOKEN_PATH, headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`token: HTTP ${res.statusCode} ${body}`));
        const kept = Object.entries(res.headers).filter(([name]) => !AUTOMATIC.has(name));
        resolve({ headers: Object.fromEntries(kept) as Record<string, string>, body });
      });
    }).on('error', reject);
  });
}

interface Load {
  perSecond: number;
  answered: number;
}

/** autocannon in its own process: CONNECTIONS keep-alive connections asking for the token for `seconds`. */
function load(port: number, seconds: number): Promise<Load> {
  const args = [AUTOCANNON, '--json', '-c', String(CONNECTIONS), '-d', String(seconds)];
  args.push('-H', 'Metadata-Flavor=Google', `http://127.0.0.1:${port}${TOKEN_PATH}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited ${code}`));
      const result = JSON.parse(out) as {
        requests: { average: number };
        errors: number;
        timeouts: number;
        non2xx: number;
        '2xx': number;
      };
      if (result.errors + result.timeouts + result.non2xx > 0) {
        return reject(new Error(`autocannon saw failures: ${out}`));
      }
      const { average: perSecond } = result.requests;
      resolve({ perSecond, answered: result['2xx'] });
    });
  });
}

/** How often `text` occurs in `bytes` (a log of a million lines is too long for one string). */
function countOf(bytes: Buffer, text: string): number {
  let count = 0;
  for (let at = bytes.indexOf(text); at !== -1; at = bytes.indexOf(text, at + text.length)) count++;
  return count;
}

/** How long gcp-metadata's instance('service-accounts/default/token') takes against `host`, ms. */
async function clientCallMs(host: string, calls: number): Promise<number> {
  const gcpMetadata = await import('gcp-metadata');
  // gcp-metadata reads GCE_METADATA_HOST on every call.
  process.env['GCE_METADATA_HOST'] = host;
  const times: number[] = [];
  try {
    for (let i = 0; i < calls; i++) {
      const start = performance.now();
      await gcpMetadata.instance('service-accounts/default/token');
      times.push(performance.now() - start);
    }
  } finally {
    delete process.env['GCE_METADATA_HOST'];
  }
  return median(times.slice(Math.floor(calls / 5)));
}

export async function metadataFigures(bench: Bench): Promise<Row[]> {
  const { tcti, dir, n, progress } = bench;
  const seconds = bench.quick ? 2 : 5;
  progress(`metadata server: autocannon, ${CONNECTIONS} connections, ${seconds} s a run, against bare node:http`);
  const logFile = path.join(dir, 'metadata.log');
  const log = openSync(logFile, 'w');
  const ours = spawn(
    process.execPath,
    [
      CLI,
      'serve-metadata',
      ...['--key', `handle:0x${ES256_HANDLE.toString(16)}`, '--email', 'bench@p.iam.gserviceaccount.com'],
      ...['--mode', 'jwt-access', '--listen', '127.0.0.1:0', '--ready-fd', '3', '--tcti', tcti],
    ],
    { stdio: ['ignore', 'ignore', log, 'pipe'] },
  );
  closeSync(log);
  let bare: ChildProcess | undefined;
  try {
    const url = new URL(await firstLine(ours, ours.stdio[3] as NodeJS.ReadableStream));
    const port = Number(url.port);
    const answer = await fetchToken(port);
    bare = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'bare-server.ts'), JSON.stringify(answer)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const barePort = Number(await firstLine(bare, bare.stdout!));

    let answered = 1;
    const rounds = { ours: [] as Load[], bare: [] as Load[] };
    // The first round of each warms the JIT and is not counted.
    for (let i = 0; i <= 3; i++) {
      const b = await load(barePort, i === 0 ? 1 : seconds);
      const o = await load(port, i === 0 ? 1 : seconds);
      answered += o.answered;
      if (i === 0) continue;
      rounds.bare.push(b);
      rounds.ours.push(o);
      progress(`  round ${i}: ${o.perSecond.toFixed(0)} req/s against ${b.perSecond.toFixed(0)} bare`);
    }
    const rate = (loads: Load[]) => median(loads.map((l) => l.perSecond));

    progress("metadata server: google-auth-library's gcp-metadata client against each server");
    const calls = n(500);
    const client = { ours: [] as number[], bare: [] as number[] };
    for (let i = 0; i < 3; i++) {
      client.bare.push(await clientCallMs(`127.0.0.1:${barePort}`, calls));
      client.ours.push(await clientCallMs(url.host, calls));
      answered += calls;
    }

    await stop(ours);
    const logged = countOf(readFileSync(logFile), '"status":200');
    if (logged < answered)
      throw new Error(`the metadata server logged ${logged} requests of at least ${answered} answered`);
    progress(`metadata server: ${logged} request lines logged for ${answered} answers counted`);
    const figure = (what: string) => `metadata server: cached token ${what} vs bare node:http`;
    return [
      compared(
        figure(`req/s (autocannon, ${CONNECTIONS} connections)`),
        'req/s',
        rate(rounds.ours),
        rate(rounds.bare),
        {
          min: 0.9,
        },
      ),
      compared(figure('call from gcp-metadata, one at a time'), 'ms', median(client.ours), median(client.bare)),
    ];
  } finally {
    if (ours.exitCode === null) ours.kill('SIGKILL');
    if (bare) await stop(bare);
  }
}
