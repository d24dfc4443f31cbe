/**
 * The docs' shell examples, run as a reader runs them. Every ```sh block in README.md and
 * docs/ carries a marker on the line above it: `<!-- example: run -->` blocks run here,
 * file by file in order, in a directory of their own, against a simulated TPM, with the
 * `tpm-jwt` command on PATH (and `npx tpm-jwt` resolving to this checkout, offline); the
 * others say why they cannot (they reach Google, need a Docker engine, or set up the
 * machine itself, as CI's own steps do). What a page says the reader already has (a
 * vendor's CA files, a service-account key) is given below, per page.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Tpm } from '../lib/index.js';
import { cliBin } from '../lib/package.js';
import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';
import { cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MARKERS = ['run', 'needs-google', 'needs-aws', 'needs-vault', 'needs-docker', 'machine-setup'] as const;
type Marker = (typeof MARKERS)[number];

interface Example {
  marker: Marker | undefined;
  line: number;
  code: string;
}

/** The shell blocks of a Markdown file, each with the marker above it. */
function examples(file: string): Example[] {
  const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    // Indented fences too (inside a list item): every shell block is held to the rule.
    if (!/^\s*```(sh|bash|shell|console)\s*$/.test(lines[i]!)) continue;
    const marker = /^\s*<!-- example: ([a-z-]+) -->$/.exec(lines[i - 1] ?? '')?.[1] as Marker | undefined;
    const end = lines.findIndex((line, at) => at > i && /^\s*```\s*$/.test(line));
    if (end < 0) throw new Error(`${file}:${i + 1}: a shell block with no closing fence`);
    out.push({ marker, line: i + 1, code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

const PAGES = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);

const EMAIL = 'sa@p.iam.gserviceaccount.com';

function serviceAccountJson(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return JSON.stringify({
    type: 'service_account',
    project_id: 'p',
    private_key_id: 'k1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: EMAIL,
  });
}

/** What a page takes as already there: files in its directory, variables, a TPM. */
interface Given {
  /** A manufactured simulated TPM in TPM2TOOLS_TCTI (the page starts its own otherwise). */
  tpm?: boolean;
  setUp?(dir: string, tcti: string): Promise<Record<string, string> | void>;
}

/** A device with EK certificates and a key at 0x81008001, and its vendor's root and intermediate as files. */
const ATTESTING_DEVICE: Given = {
  tpm: true,
  async setUp(dir, tcti) {
    const tpm = await Tpm.open({ tcti });
    await tpm.createKey({ alg: 'ES256', persist: 0x81008001 });
    await tpm.close();
    const ca = simulated!.ca!;
    writeFileSync(path.join(dir, 'tpm-vendor-roots.pem'), ca.root);
    writeFileSync(path.join(dir, 'vendor-intermediate.pem'), ca.intermediate);
  },
};

const GIVEN: Record<string, Given> = {
  'README.md': {},
  'docs/testing.md': {
    async setUp(dir) {
      // "npm test: your suite": a project whose suite asks the simulated TPM for a public key.
      writeFileSync(
        path.join(dir, 'package.json'),
        JSON.stringify({ name: 'yours', private: true, scripts: { test: 'tpm-jwt pubkey --key "$TPM_JWT_KEY"' } }),
      );
    },
  },
  'docs/attestation.md': ATTESTING_DEVICE,
  'docs/enrollment.md': ATTESTING_DEVICE,
  'docs/google.md': {
    tpm: true,
    async setUp(dir) {
      writeFileSync(path.join(dir, 'sa.json'), serviceAccountJson(), { mode: 0o600 });
    },
  },
  'docs/keyless.md': { tpm: true },
  'docs/aws.md': { tpm: true },
  'docs/azure.md': { tpm: true },
  'docs/signed-urls.md': {
    tpm: true,
    async setUp(dir, tcti) {
      writeFileSync(path.join(dir, 'sa.json'), serviceAccountJson(), { mode: 0o600 });
      const imported = await cli([
        'import',
        '--in',
        path.join(dir, 'sa.json'),
        '--persist',
        '0x81008002',
        '--tcti',
        tcti,
      ]);
      assert.equal(imported.code, 0, imported.stderr);
      writeFileSync(path.join(dir, 'sa-tpm.json'), imported.stdout);
      writeFileSync(path.join(dir, 'string-to-sign.txt'), 'GOOG4-RSA-SHA256\n20261203T000000Z\n');
      return { POLICY_BASE64: Buffer.from('{"conditions":[]}').toString('base64') };
    },
  },
};

let simulated: SoftwareTpm | undefined;

describe('94 the docs: every shell example runs, or says why it cannot', function () {
  this.timeout(300_000);
  const fixture = useSwtpm();

  it('every shell block is marked, with a known marker', () => {
    const unmarked = PAGES.flatMap((page) =>
      examples(page)
        .filter((e) => e.marker === undefined || !MARKERS.includes(e.marker))
        .map((e) => `${page}:${e.line}`),
    );
    assert.deepEqual(unmarked, [], `mark these <!-- example: ${MARKERS.join('|')} -->`);
  });

  it('every page with a block to run says what it takes as given', () => {
    const pages = PAGES.filter((page) => examples(page).some((e) => e.marker === 'run'));
    assert.deepEqual(
      pages.filter((page) => !(page in GIVEN)),
      [],
    );
  });

  for (const page of Object.keys(GIVEN)) {
    it(`runs ${page}'s examples in order`, async () => {
      const blocks = examples(page).filter((e) => e.marker === 'run');
      assert.ok(blocks.length > 0, `${page} has no example to run`);
      const given = GIVEN[page]!;
      const dir = fixture.tempDir(page.replace(/[/.]/g, '-'));
      // `npx tpm-jwt` finds this checkout as the project's dependency; `tpm-jwt` is on PATH.
      mkdirSync(path.join(dir, 'node_modules'));
      symlinkSync(ROOT, path.join(dir, 'node_modules', 'tpm-jwt'));
      const bin = path.join(dir, '.bin');
      mkdirSync(bin);
      const main = cliBin();
      writeFileSync(path.join(bin, 'tpm-jwt'), `#!/bin/sh\nexec "${process.execPath}" "${main}" "$@"\n`);
      chmodSync(path.join(bin, 'tpm-jwt'), 0o755);
      const { TPM2TOOLS_TCTI: _outer, TSS2_TCTI: _tss, ...outer } = process.env;
      let env: NodeJS.ProcessEnv = {
        ...outer,
        PATH: `${bin}:${process.env['PATH']}`,
        // Nothing is fetched: npx must resolve to the link above or fail.
        npm_config_offline: 'true',
        npm_config_update_notifier: 'false',
      };
      try {
        if (given.tpm) {
          simulated = await startSoftwareTpm({ manufacture: true });
          env = { ...env, TPM2TOOLS_TCTI: simulated.tcti };
        }
        env = { ...env, ...((await given.setUp?.(dir, simulated?.tcti ?? '')) ?? {}) };
        for (const block of blocks) {
          const ran = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', block.code], {
            cwd: dir,
            env,
            encoding: 'utf8',
            timeout: 120_000,
          });
          assert.equal(
            ran.status,
            0,
            `${page}:${block.line} failed (${ran.signal ?? ran.status}):\n${block.code}\n--- stderr\n${ran.stderr}`,
          );
        }
      } finally {
        await simulated?.stop();
        simulated = undefined;
      }
    });
  }
});
