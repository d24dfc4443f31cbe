#!/usr/bin/env node
/**
 * The installed `tpm-jwt` command, built as CommonJS to dist/cli/tpm-jwt.cjs beside the
 * CLI's bundle, main.cjs (scripts/bundle.ts). It turns Node's compile cache on (Node 22.1 and
 * later; a no-op before) and only then requires the bundle, so that the bundle is
 * compiled from the cache rather than parsed again on every run.
 */
(require('node:module') as { enableCompileCache?: () => unknown }).enableCompileCache?.();
require('./main.cjs'); // main.ts, bundled
