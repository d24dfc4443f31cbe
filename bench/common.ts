/**
 * What every figure group shares: the row a figure is, the TPM and keys the run set up,
 * and the ways of measuring that more than one group uses (signature rates, the raw
 * Esys_Sign loop, alternating rounds).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Signer, Tpm, TpmKey } from '../lib/index.js';
import { cliBin } from '../lib/package.js';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(HERE);
export const CLI = cliBin();
export const ES256_HANDLE = 0x81000a00;
export const RS256_HANDLE = 0x81000a01;

/**
 * One figure. `baseline` is always something measured in the same run that is not
 * tpm-jwt (the raw Esys_Sign loop, tpm2_sign, node:crypto, google-auth-library, a bare
 * node:http server, bare node), and `ratio` is value / baseline; a figure with no such
 * reference has neither. A target is only ever in `target`.
 */
export interface Row {
  figure: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
  target?: string;
  met?: boolean;
}

/** A figure against its reference; `min`/`max` bound the ratio when the figure has a target. */
export function compared(
  figure: string,
  unit: string,
  value: number,
  baseline: number,
  bound: { min?: number; max?: number } = {},
): Row {
  const ratio = value / baseline;
  const row: Row = { figure, value, unit, baseline, ratio };
  if (bound.min !== undefined) return { ...row, target: `>= ${bound.min.toFixed(2)}x`, met: ratio >= bound.min };
  if (bound.max !== undefined) return { ...row, target: `<= ${bound.max.toFixed(2)}x`, met: ratio <= bound.max };
  return row;
}

/** A figure with no reference to compare with, only its target (if any). */
export function absolute(figure: string, unit: string, value: number, target?: { text: string; met: boolean }): Row {
  return { figure, value, unit, ...(target && { target: target.text, met: target.met }) };
}

/** What index.ts sets up once for every group. */
export interface Bench {
  readonly tcti: string;
  /** A scratch directory, removed after the run. */
  readonly dir: string;
  /** --quick: fewer and shorter rounds. */
  readonly quick: boolean;
  /** `count` scaled down under --quick. */
  n(count: number): number;
  progress(line: string): void;
  /** One connection without parameter encryption, one with (the default). */
  readonly tpms: { readonly plain: Tpm; readonly encrypted: Tpm };
  /** The persistent ES256 and RS256 keys, loaded on each connection. */
  readonly keys: Record<'plain' | 'encrypted', Record<'ES256' | 'RS256', TpmKey>>;
}

/** One figure group: its rows, measured on `bench`. */
export type Group = (bench: Bench) => Promise<Row[]>;

export const MESSAGE = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJiZW5jaCJ9');

/** Signatures per second through a Signer, `window` signs kept queued on its context. */
export async function signRate(signer: Signer, count: number, window = 4): Promise<number> {
  await signer.sign(MESSAGE);
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next++ < count) await signer.sign(MESSAGE);
    }),
  );
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

export const RAW_SIGN = path.join(HERE, 'build', 'raw-sign');

/** Compiles bench/raw-sign.c against the system's tpm2-tss. */
export function buildRawSign(): void {
  mkdirSync(path.dirname(RAW_SIGN), { recursive: true });
  const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'tss2-esys', 'tss2-tctildr'], { encoding: 'utf8' });
  execFileSync('sh', ['-c', `cc -O2 -o "${RAW_SIGN}" "${path.join(HERE, 'raw-sign.c')}" ${flags}`]);
}

/** Signatures per second of the raw Esys_Sign loop on the persistent key of `alg`. */
export function rawRate(tcti: string, alg: 'ES256' | 'RS256', count: number, encrypt: boolean): number {
  const handle = alg === 'ES256' ? ES256_HANDLE : RS256_HANDLE;
  const scheme = alg === 'ES256' ? 'ecdsa' : 'rsassa';
  const out = execFileSync(RAW_SIGN, [tcti, handle.toString(16), String(count), scheme, encrypt ? '1' : '0'], {
    encoding: 'utf8',
    env: { ...process.env, TSS2_LOG: 'all+none' },
  });
  return Number(out.trim());
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Ours and the baseline measured in alternating rounds, each figure the median: on a
 * shared two-core machine the TPM's speed drifts between seconds, and alternating
 * keeps that drift from landing on one side only.
 */
export async function alternate(
  rounds: number,
  ours: () => Promise<number> | number,
  baseline: () => Promise<number> | number,
): Promise<{ ours: number; baseline: number }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(await baseline());
    a.push(await ours());
  }
  return { ours: median(a), baseline: median(b) };
}

/** Calls per second of a synchronous `op`, after a warm-up. */
export function opsRate(count: number, op: () => unknown): number {
  for (let i = 0; i < Math.min(count, 1000); i++) op();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) op();
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** Calls per second of an asynchronous `op`, one at a time, after a warm-up. */
export async function asyncOpsRate(count: number, op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(count, 1000); i++) await op();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await op();
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}
