/**
 * The layers of lib/ (ARCHITECTURE.md), read from the source: every import (type-only
 * and dynamic ones included) points down the layer table or stays in its own unit, no
 * module reaches itself through its imports, and the attestation verifier never reaches
 * the addon.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));
const TEST = fileURLToPath(new URL('./', import.meta.url));

/**
 * Bottom up. A unit is a folder of lib/, or a name for files directly in lib/ (ROOT_FILES).
 * A module imports from its own unit or from a lower layer; units that share a layer sit
 * beside each other and import neither one the other.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['base'], // errors, algorithms, JWK helpers: Node only
  ['wire'], // TPM structures and attestation documents: what the device and the verifier share
  ['native'], // the addon's surface and its loader
  ['tpm'],
  ['attest', 'crypt', 'tls'], // attestation (device side on lib/tpm, verifier on lib/wire); signers
  ['jwt'],
  ['google', 'aws', 'azure', 'vault', 'enroll'], // one cloud each, and enrollment, beside one another
  ['metadata'],
  ['testing'], // tpm-jwt/testing: software TPMs for tests, which only the CLI's simulate loads
  ['cli'],
  ['entry'], // the package root
];

const ROOT_FILES: Readonly<Record<string, string>> = {
  'errors.ts': 'base',
  'algorithms.ts': 'base',
  'jwk.ts': 'base',
  'encoding.ts': 'base',
  'atomic-file.ts': 'base',
  'remember-last.ts': 'base',
  'package.ts': 'base',
  'post.ts': 'base',
  'loopback.ts': 'base',
  'native.ts': 'native',
  'index.ts': 'entry',
};

/**
 * The numbers of each layer's suites in test/ (named NN.layer.topic.test.ts), as README.md
 * gives them; a suite named for no layer is the package's base (below 10) or the package
 * as a whole (90 and up).
 */
const TEST_NUMBERS: Readonly<Record<string, readonly [number, number]>> = {
  tpm: [10, 29],
  attest: [30, 35],
  tls: [36, 39],
  jwt: [40, 49],
  google: [50, 55],
  azure: [56, 56],
  aws: [57, 57],
  vault: [58, 58],
  enroll: [59, 59],
  metadata: [60, 69],
  testing: [70, 79],
  cli: [80, 89],
};

/** The attestation verifier's modules: servers run them with neither a TPM nor the addon. */
const VERIFIER = ['attest/verify.ts', 'attest/challenge.ts'];
/** The enrollment server's: the same, with a CA (whose TPM key, if any, is the caller's). */
const ENROLLMENT_SERVER = ['enroll/handler.ts', 'enroll/certificate-authority.ts'];

/** Module paths relative to lib/, POSIX separators. */
function modules(): string[] {
  return readdirSync(LIB, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => file.split(path.sep).join('/'))
    .sort();
}

/** The lib/ modules `file` imports: static, type-only, re-exports and import() alike. */
function importsOf(file: string): string[] {
  const source = readFileSync(path.join(LIB, file), 'utf8');
  return (
    ts
      .preProcessFile(source, true, true)
      .importedFiles.map((i) => i.fileName)
      .filter((specifier) => specifier.startsWith('.'))
      // A .cjs is a bundle built from the .ts of that name (scripts/bundle.ts).
      .map((specifier) => path.posix.join(path.posix.dirname(file), specifier).replace(/\.c?js$/, '.ts'))
  );
}

function unitOf(file: string): string | undefined {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : ROOT_FILES[file];
}

const layerOf = (unit: string) => LAYERS.findIndex((layer) => layer.includes(unit));

/** Every module reachable from `roots` through imports, the roots included. */
function closure(graph: Map<string, string[]>, roots: string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const next of graph.get(file) ?? []) visit(next);
  };
  roots.forEach(visit);
  return seen;
}

/** The modules that reach themselves through imports: each strongly connected set of two or more, sorted. */
function cycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (file: string) => {
    index.set(file, index.size);
    low.set(file, index.get(file)!);
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(file, Math.min(low.get(file)!, low.get(next)!));
      } else if (stack.includes(next)) {
        low.set(file, Math.min(low.get(file)!, index.get(next)!));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component = stack.splice(stack.indexOf(file));
    if (component.length > 1) out.push(component.sort());
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return out;
}

describe('02 layers of lib/', () => {
  const graph = new Map(modules().map((file) => [file, importsOf(file)]));

  it('reads the imports it checks (type-only and dynamic ones included)', () => {
    assert.ok(graph.get('attest/index.ts')!.includes('attest/device.ts'), 'a dynamic import');
    assert.ok(graph.get('tpm/key.ts')!.includes('wire/tpm-structures.ts'), 'a type-only import');
    for (const [file, imports] of graph) {
      for (const target of imports) assert.ok(graph.has(target), `${file} imports ${target}, which is not in lib/`);
    }
  });

  it('places every module in a layer', () => {
    const unplaced = [...graph.keys()].filter((file) => {
      const unit = unitOf(file);
      return unit === undefined || layerOf(unit) < 0;
    });
    assert.deepEqual(unplaced, [], 'add these to LAYERS (or ROOT_FILES) in test/02.layers.test.ts');
  });

  it('imports only from the same unit or a lower layer', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      const unit = unitOf(file)!;
      for (const target of imports) {
        const targetUnit = unitOf(target)!;
        if (targetUnit !== unit && layerOf(targetUnit) >= layerOf(unit)) {
          upward.push(`${file} (${unit}) -> ${target} (${targetUnit})`);
        }
      }
    }
    assert.deepEqual(upward, []);
  });

  it('has no import cycle', () => {
    assert.deepEqual(cycles(graph), [], 'modules that import each other, directly or through others');
  });

  it("keeps the addon out of the attestation verifier's import closure", () => {
    const reached = [...closure(graph, VERIFIER)];
    assert.deepEqual(
      reached.filter((file) => file === 'native.ts' || unitOf(file) === 'tpm'),
      [],
      'the verifier reaches the addon layer',
    );
    assert.ok(reached.includes('wire/tpm-structures.ts'), 'the verifier decodes TPM structures with lib/wire');
  });

  it("keeps the addon out of the enrollment server's import closure", () => {
    const reached = [...closure(graph, ENROLLMENT_SERVER)];
    assert.deepEqual(
      reached.filter((file) => file === 'native.ts' || file === 'tpm/tpm.ts' || file === 'tpm/key.ts'),
      [],
    );
  });

  it('numbers the suites in test/ by layer', () => {
    const misplaced = readdirSync(TEST).filter((file) => {
      if (!file.endsWith('.test.ts')) return false;
      const [number, layer] = file.split('.') as [string, string];
      const range = TEST_NUMBERS[layer];
      const n = Number(number);
      return range ? n < range[0] || n > range[1] : n >= 10 && n < 90;
    });
    assert.deepEqual(misplaced, [], 'renumber these into their layer (TEST_NUMBERS)');
  });
});
