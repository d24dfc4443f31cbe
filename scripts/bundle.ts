/**
 * Builds dist/'s JavaScript from lib/ (tsc writes only the .d.ts files beside it).
 *
 * Node 20 spends about half a millisecond per ES module it loads, so a tree of small
 * modules costs a short-lived process more than its own work does:
 * - the package entries (tpm-jwt, /google, /metadata, /aws, /azure, /vault, /enroll, /tls, /testing)
 *   are ES modules split into shared chunks, each loaded when first imported, as tsc's
 *   tree was;
 * - the command line is one CommonJS file: required synchronously, its commands still
 *   evaluated only when run (esbuild wraps what is only reached by `import()`), and its
 *   dependencies required only then (jose, ES-only, through require() of an ES module:
 *   Node 20.19 and later, silently).
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, type BuildOptions } from 'esbuild';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const common: BuildOptions = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  tsconfig: 'tsconfig.build.json',
  logLevel: 'warning',
  legalComments: 'none',
  // Dependencies are the installed ones, shared with the application, loaded when used.
  packages: 'external',
};

await Promise.all([
  build({
    ...common,
    entryPoints: {
      index: 'lib/index.ts',
      'google/index': 'lib/google/index.ts',
      'metadata/index': 'lib/metadata/index.ts',
      'aws/index': 'lib/aws/index.ts',
      'azure/index': 'lib/azure/index.ts',
      'vault/index': 'lib/vault/index.ts',
      'enroll/index': 'lib/enroll/index.ts',
      'tls/index': 'lib/tls/index.ts',
      'testing/index': 'lib/testing/index.ts',
    },
    outdir: 'dist',
    format: 'esm',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
  }),
  build({
    ...common,
    // The bin requires the bundle at run time (lib/cli/bin.ts).
    entryPoints: { 'cli/main': 'lib/cli/main.ts', 'cli/tpm-jwt': 'lib/cli/bin.ts' },
    external: ['./main.cjs'],
    outdir: 'dist',
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    inject: ['scripts/import-meta-url.ts'],
    define: { 'import.meta.url': 'importMetaUrl' },
  }),
]);
