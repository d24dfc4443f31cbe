/**
 * What a newcomer tripped on at the CLI: one rule for every file a command writes,
 * errors in the CLI's words (flags, not the library's options), a next step where
 * there was none, one failure code for wif-token, and --help and the docs listing
 * every flag a command takes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeProtectedHeader } from 'jose';

import { COMMON_OPTIONS } from '../lib/cli/args.js';
import { COMMANDS } from '../lib/cli/commands/index.js';
import { keyThumbprint } from '../lib/jwk.js';
import { assertFails, cli, type CliResult } from './helpers/cli.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');
const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');
const EMAIL = 'sa@p.iam.gserviceaccount.com';

/** The flags a command accepts, common ones included, as `--name`. */
async function acceptedFlags(name: string): Promise<{ own: string[]; all: Set<string> }> {
  const command = await COMMANDS.find((c) => c.name === name)!.load();
  const own = Object.keys(command.options).map((f) => `--${f}`);
  return { own, all: new Set([...own, ...Object.keys(COMMON_OPTIONS).map((f) => `--${f}`)]) };
}

const flagPattern = (flag: string) => new RegExp(`${flag}(?![a-z0-9-])`);

/** The refusal of an existing file: ERR_INVALID_ARGUMENT naming the file and --force. */
function assertRefusedFile(result: CliResult, file: string): void {
  assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
  assert.ok(result.stderr.includes(file), result.stderr);
  assert.match(result.stderr, /--force/);
}

describe('82 CLI friction', () => {
  describe('--help and the docs', () => {
    it('--help shows every flag each command accepts', async () => {
      const missing: string[] = [];
      for (const { name } of COMMANDS) {
        const help = await cli([name, '--help']);
        assert.equal(help.code, 0, name);
        for (const flag of (await acceptedFlags(name)).own) {
          if (!flagPattern(flag).test(help.stdout)) missing.push(`${name} ${flag}`);
        }
      }
      assert.deepEqual(missing, []);
    });

    // docs/cli.md when it exists (the CLI reference moved there), else README's CLI section.
    it('the CLI reference names every flag --help shows', async () => {
      const docsFile = path.join(ROOT, 'docs', 'cli.md');
      let reference: string;
      if (existsSync(docsFile)) {
        reference = readFileSync(docsFile, 'utf8');
      } else {
        const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
        const start = readme.indexOf('\n## CLI\n');
        assert.ok(start >= 0, 'README.md has a CLI section');
        const end = readme.indexOf('\n## ', start + 1);
        reference = readme.slice(start, end < 0 ? undefined : end);
      }
      const missing: string[] = [];
      for (const { name } of COMMANDS) {
        const help = (await cli([name, '--help'])).stdout;
        const { all } = await acceptedFlags(name);
        // Only this command's own flags: its help also names gcloud's and other commands'.
        const shown = new Set([...help.matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]).filter((f) => all.has(f)));
        for (const flag of shown) if (!flagPattern(flag).test(reference)) missing.push(`${name} ${flag}`);
      }
      assert.deepEqual(missing, [], `flags --help shows that ${existsSync(docsFile) ? 'docs/cli.md' : 'README'} lacks`);
    });
  });

  describe('wif-token: one code in its JSON and on stderr', () => {
    it('a usage error answers USAGE in both, exit 2', async () => {
      for (const args of [
        ['--key', '0x81000001', '--issuer', 'https://devices.example.com'], // no audience, no variables
        ['--key', '0x81000001', '--issuer', 'https://devices.example.com', '--bogus'],
      ]) {
        const result = await cli(['wif-token', ...args], { GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE: '' });
        assertFails(result, 2, 'USAGE');
        const response = JSON.parse(result.stdout);
        assert.equal(response.success, false);
        assert.equal(response.code, 'USAGE', result.stdout);
        assert.ok(result.stderr.startsWith(`error [USAGE]: ${response.message}\n`), result.stderr);
      }
    });

    it('takes no --email (the in-process parser of its command refuses it too)', async () => {
      const result = await cli(['wif-token', '--key', '0x81000001', '--issuer', 'https://i', '--email', EMAIL]);
      assertFails(result, 2, 'USAGE');
      assert.equal(JSON.parse(result.stdout).code, 'USAGE');
    });
  });

  it('attest: --force replaces an --out file; the object at --ak-handle is --replace-ak-handle', async () => {
    const result = await cli([
      ...['attest', '--key', 'key.pem', '--ak-handle', '0x81000040', '--force'],
      ...['--tcti', 'swtpm:host=127.0.0.1,port=1'],
    ]);
    assertFails(result, 2, 'USAGE');
    assert.match(result.stderr, /--replace-ak-handle/);
    assertFails(await cli(['attest', '--key', 'key.pem', '--replace-ak-handle']), 2, 'USAGE');
  });

  describe('with a TPM', () => {
    const swtpm = useSwtpm();
    const HANDLE = 0x81004101;
    let dir: string;
    let publicKey: KeyObject;

    before(async () => {
      dir = swtpm.tempDir('friction');
      const tpm = await swtpm.openTpm();
      ({ publicKey } = await tpm.createKey({ alg: 'ES256', persist: HANDLE }));
      swtpm.cleanup(() => tpm.evict(HANDLE));
    });

    it('an occupied handle names --force, not the library option', async () => {
      const result = await cli(['keygen', '--alg', 'ES256', '--persist', '0x81004101', '--tcti', swtpm.tcti]);
      assertFails(result, 1, 'ERR_TPM_HANDLE_IN_USE');
      assert.match(result.stderr, /pass --force to replace it/);
      assert.doesNotMatch(result.stderr, /pass force\b/);
    });

    it('import --out refuses an existing file before the TPM work, naming --force; --force replaces it', async () => {
      const pem = path.join(dir, 'import.pem');
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(pem, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const out = path.join(dir, 'imported.pem');
      writeFileSync(out, 'keep me');
      const args = ['import', '--in', pem, '--out', out, '--tcti', swtpm.tcti];
      assertRefusedFile(await cli(args), out);
      assert.equal(readFileSync(out, 'utf8'), 'keep me');
      const forced = await cli([...args, '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(readFileSync(out, 'utf8'), /BEGIN TSS2 PRIVATE KEY/);
      assert.equal(statSync(out).mode & 0o777, 0o600);
    });

    it('attest on a TPM without EK certificates says how a swtpm gets them', async () => {
      const result = await cli(['attest', '--key', '0x81004101', '--tcti', swtpm.tcti]);
      assertFails(result, 1, 'ERR_TPM_UNSUPPORTED');
      assert.match(result.stderr, /swtpm_setup --tpm2 --create-ek-cert/);
    });

    it("--kid names the token's kid with --credentials too, over the descriptor's private_key_id", async () => {
      const descriptor = writeDescriptor(path.join(dir, 'sa.json'), {
        client_email: EMAIL,
        private_key_id: 'desc-kid',
        tpm: { tcti: swtpm.tcti, key: 'handle:0x81004101' },
      });
      const minted = async (...extra: string[]) => {
        const result = await cli(['token', '--credentials', descriptor, '--audience', 'https://x/', ...extra]);
        assert.equal(result.code, 0, result.stderr);
        return decodeProtectedHeader(result.stdout.trim()).kid;
      };
      assert.equal(await minted(), 'desc-kid');
      assert.equal(await minted('--kid', 'override'), 'override');
    });

    it('serve-metadata signs with kid: the key thumbprint by default, or --kid', async () => {
      for (const [extra, kid] of [
        [[], keyThumbprint(publicKey)],
        [['--kid', 'my-kid'], 'my-kid'],
      ] as const) {
        const token = await metadataToken(['--key', '0x81004101', '--email', EMAIL, '--tcti', swtpm.tcti, ...extra]);
        assert.equal(decodeProtectedHeader(token).kid, kid);
      }
    });
  });

  describe('with a TPM that has EK certificates', () => {
    const swtpm = useSwtpm({ ekCertificates: true });
    const AK_HANDLE = 0x81004140;
    let dir: string;
    let keyFile: string;
    const file = (name: string) => path.join(dir, name);
    const attest = (...args: string[]) =>
      cli(['attest', '--tcti', swtpm.tcti, '--key', keyFile, '--email', EMAIL, ...args]);
    const verifier = (attestation: string) => ['verify-attestation', file(attestation), '--ca', swtpm.ekCa.rootFile];

    before(async () => {
      dir = swtpm.tempDir('friction-attest');
      const tpm = await swtpm.openTpm();
      keyFile = file('key.pem');
      writeFileSync(keyFile, (await tpm.createKey({ alg: 'ES256' })).toPem());
      await tpm.createKey({ alg: 'ES256', persist: AK_HANDLE });
      swtpm.cleanup(() => tpm.evict(AK_HANDLE).catch(() => undefined));
      const made = await attest('--ek-chain', swtpm.ekCa.intermediateFile, '--out', file('attestation.json'));
      assert.equal(made.code, 0, made.stderr);
      const bare = await attest('--out', file('no-chain.json'));
      assert.equal(bare.code, 0, bare.stderr);
    });

    it('attest --out refuses an existing file, naming --force; --force replaces it (mode 0600)', async () => {
      const out = file('attestation.json');
      const before = readFileSync(out, 'utf8');
      assertRefusedFile(await attest('--ek-chain', swtpm.ekCa.intermediateFile, '--out', out), out);
      assert.equal(readFileSync(out, 'utf8'), before);
      const forced = await attest('--ek-chain', swtpm.ekCa.intermediateFile, '--out', out, '--force');
      assert.equal(forced.code, 0, forced.stderr);
      assert.notEqual(readFileSync(out, 'utf8'), before, 'a new attestation');
      assert.equal(statSync(out).mode & 0o777, 0o600);
    });

    it('verify-attestation --challenge-out, --expected-out refuse existing files; --force replaces them', async () => {
      // One round with the challenge there, one with the expectation.
      for (const [round, existing] of [
        ['a', 'challenge'],
        ['b', 'expected'],
      ] as const) {
        const out = { challenge: file(`challenge-${round}.json`), expected: file(`expected-${round}.json`) };
        const args = [
          ...verifier('attestation.json'),
          '--challenge-out',
          out.challenge,
          '--expected-out',
          out.expected,
        ];
        writeFileSync(out[existing], 'keep me');
        assertRefusedFile(await cli(args), out[existing]);
        assert.equal(readFileSync(out[existing], 'utf8'), 'keep me');
        assert.equal(Object.values(out).filter((f) => existsSync(f)).length, 1, 'nothing written on refusal');
        const forced = await cli([...args, '--force']);
        assert.equal(forced.code, 0, forced.stderr);
        for (const written of Object.values(out)) {
          assert.equal(typeof JSON.parse(readFileSync(written, 'utf8')), 'object');
          assert.equal(statSync(written).mode & 0o777, 0o600);
        }
      }
    });

    it('attest --activate --out refuses an existing file; --force replaces it', async () => {
      const made = await cli([
        ...verifier('attestation.json'),
        ...['--challenge-out', file('c2.json'), '--expected-out', file('e2.json')],
      ]);
      assert.equal(made.code, 0, made.stderr);
      const out = file('activation.json');
      writeFileSync(out, 'keep me');
      const args = ['attest', '--tcti', swtpm.tcti, '--activate', file('c2.json'), '--out', out];
      assertRefusedFile(await cli(args), out);
      assert.equal(readFileSync(out, 'utf8'), 'keep me');
      const forced = await cli([...args, '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const verified = await cli([...verifier('attestation.json'), '--expected', file('e2.json'), '--activation', out]);
      assert.equal(verified.code, 0, verified.stderr);
    });

    it('an occupied --ak-handle names --replace-ak-handle, which replaces the object', async () => {
      const handle = ['--ak-handle', `0x${AK_HANDLE.toString(16)}`];
      const refused = await attest(...handle);
      assertFails(refused, 1, 'ERR_TPM_HANDLE_IN_USE');
      assert.match(refused.stderr, /pass --replace-ak-handle/);
      assert.doesNotMatch(refused.stderr, /pass (--)?force\b/);
      const replaced = await attest(...handle, '--replace-ak-handle');
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.equal(JSON.parse(replaced.stdout).ak.handle, `0x${AK_HANDLE.toString(16)}`);
    });

    it('an unbound AK names the commands and flags that bind it, not library functions', async () => {
      const result = await cli(verifier('attestation.json'));
      assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
      const akBound = JSON.parse(result.stdout).reasons.find((r: { check: string }) => r.check === 'ak-bound');
      for (const text of [result.stderr, akBound.detail as string]) {
        assert.match(text, /--challenge-out/);
        assert.match(text, /attest --activate/);
        assert.match(text, /--ak-ca/);
        assert.doesNotMatch(text, /createActivationChallenge|activateCredential|akRoots/);
      }
    });

    it("names the flag, not the library's option, for a CA file with no certificate", async () => {
      const empty = file('empty.pem');
      writeFileSync(empty, 'no certificate here\n');
      const ca = await cli(['verify-attestation', file('attestation.json'), '--ca', empty]);
      assertFails(ca, 1, 'ERR_INVALID_ARGUMENT');
      assert.match(ca.stderr, /^error \[ERR_INVALID_ARGUMENT\]: --ca holds no certificate/);
      const akCa = await cli([...verifier('attestation.json'), '--ak-ca', empty]);
      assertFails(akCa, 1, 'ERR_INVALID_ARGUMENT');
      assert.match(akCa.stderr, /^error \[ERR_INVALID_ARGUMENT\]: --ak-ca holds no certificate/);
      const chain = await attest('--ek-chain', empty);
      assertFails(chain, 1, 'ERR_INVALID_ARGUMENT');
      assert.match(chain.stderr, /^error \[ERR_INVALID_ARGUMENT\]: --ek-chain holds no PEM certificate/);
    });

    it('an EK certificate that does not chain names --ek-chain', async () => {
      const result = await cli(verifier('no-chain.json'));
      assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
      const ek = JSON.parse(result.stdout).reasons.find((r: { check: string }) => r.check === 'ek-certificate');
      assert.equal(ek.ok, false);
      assert.match(ek.detail, /does not chain to a given root.*--ek-chain/);
      assert.match(result.stderr, /--ek-chain/);
      const challenge = await cli([
        ...verifier('no-chain.json'),
        ...['--challenge-out', file('c3.json'), '--expected-out', file('e3.json')],
      ]);
      assertFails(challenge, 1, 'ERR_INVALID_ARGUMENT');
      assert.match(challenge.stderr, /--ek-chain/);
    });
  });
});

/**
 * `tpm-jwt serve-metadata ARGS` (jwt-access) as a process: the access token it serves,
 * then SIGTERM and its exit.
 */
async function metadataToken(args: string[]): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', MAIN, 'serve-metadata', ...args],
      ...['--mode', 'jwt-access', '--listen', '127.0.0.1:0', '--ready-fd', '3'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: process.env },
  );
  try {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let ready = '';
    // --ready-fd 3: the URL, then the descriptor closes.
    for await (const chunk of child.stdio[3] as NodeJS.ReadableStream) ready += String(chunk);
    assert.match(ready, /^http:/, stderr);
    const url = new URL('/computeMetadata/v1/instance/service-accounts/default/token', ready.trim());
    const response = await fetch(url, { headers: { 'metadata-flavor': 'Google' } });
    assert.equal(response.status, 200, stderr);
    const { access_token: token } = (await response.json()) as { access_token: string };
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    return token;
  } finally {
    child.kill('SIGKILL');
  }
}
