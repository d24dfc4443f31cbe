import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, verify } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { Tpm } from '../lib/index.js';
import { startChipRelay } from '../lib/testing/index.js';
import { withAuth } from '../lib/tpm/auth.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

describe('16 TPM security: auth values, lockout, encrypted sessions', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;

  before(async () => {
    tpm = await swtpm.openTpm();
  });

  it('signs with the right auth value; a wrong one is ERR_TPM_AUTH_FAIL and says it counts', async () => {
    const created = await tpm.createKey({ alg: 'ES256', auth: 'correct horse' });
    const data = Buffer.from('with auth');
    const signature = await created.sign(data);
    assert.ok(verify('sha256', data, { key: created.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
    const wrong = await tpm.loadKey(created.toPem(), { auth: 'battery staple' });
    await assert.rejects(wrong.sign(data), { code: 'ERR_TPM_AUTH_FAIL', message: /DA counter/ });
    const none = await tpm.loadKey(created.toPem());
    await assert.rejects(none.sign(data), { code: 'ERR_TPM_AUTH_FAIL' });
    // Bytes work as well as strings.
    const bytes = await tpm.loadKey(created.toPem(), { auth: Buffer.from('correct horse') });
    assert.equal((await bytes.sign(data)).length, 64);
  });

  it('reports dictionary-attack lockout as ERR_TPM_LOCKOUT, even for the right value', async () => {
    const key = await tpm.createKey({ alg: 'ES256', auth: 'right' });
    const wrong = await tpm.loadKey(key.toPem(), { auth: 'wrong' });
    // Start from a zero failure count (the test above failed twice), then allow two.
    tpm2(swtpm.tcti, 'dictionarylockout', '-c');
    tpm2(swtpm.tcti, 'dictionarylockout', '-s', '-n', '2', '-t', '600', '-l', '600');
    try {
      const data = Buffer.from('x');
      await assert.rejects(wrong.sign(data), { code: 'ERR_TPM_AUTH_FAIL' });
      await assert.rejects(wrong.sign(data), { code: 'ERR_TPM_AUTH_FAIL' });
      await assert.rejects(wrong.sign(data), { code: 'ERR_TPM_LOCKOUT' });
      await assert.rejects(key.sign(data), { code: 'ERR_TPM_LOCKOUT', message: /lockout/i });
    } finally {
      // Leave the TPM as generous as before for the suites that share it.
      tpm2(swtpm.tcti, 'dictionarylockout', '-c');
      tpm2(swtpm.tcti, 'dictionarylockout', '-s', '-n', '1000', '-t', '1', '-l', '1');
    }
    assert.equal((await key.sign(Buffer.from('after reset'))).length, 64);
  });

  // After the lockout test, which leaves the TPM generous with failed attempts.
  it('never shows an auth value: not in errors, stderr, --json or inspect; no token on failure', async () => {
    const right = 'right-auth-value-7d1c';
    const wrong = 'wrong-auth-value-5e2f';
    const created = await tpm.createKey({ alg: 'ES256', auth: right, persist: 0x81000031 });
    swtpm.cleanup(() => tpm.evict(0x81000031));
    const loaded = await tpm.loadKey(0x81000031, { auth: wrong });
    const error = await loaded.sign(Buffer.from('x')).then(
      () => assert.fail('signed with a wrong auth value'),
      (err: Error) => err,
    );
    assert.ok(!JSON.stringify({ ...error, message: error.message, stack: error.stack }).includes(wrong));

    const token = ['token', '--key', '0x81000031', '--email', 'sa@p', '--audience', 'https://x/', '--tcti', swtpm.tcti];
    for (const auth of [wrong, right]) {
      const result = await cli([...token, '--auth-env', 'KEY_AUTH', '--json'], { KEY_AUTH: auth });
      if (auth === wrong) {
        assertFails(result, 1, 'ERR_TPM_AUTH_FAIL');
        assert.equal(result.stdout, '', 'a failed token command prints no token');
      } else {
        assert.equal(result.code, 0, result.stderr);
        assert.doesNotMatch(result.stderr, /eyJ/, 'the token goes to stdout only');
      }
      assert.ok(!`${result.stdout}${result.stderr}`.includes(right) && !result.stderr.includes(wrong));
    }
    const inspected = await cli(['inspect', '--key', '0x81000031', '--json', '--tcti', swtpm.tcti]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.ok(!inspected.stdout.includes(right));
    assert.equal(created.handle, 0x81000031);
  });

  // With an HMAC session, tpm2-tss itself keeps session key || auth value in its session
  // record and frees that record unwiped when the session is saved; no API reaches it.
  // Those are its copies: one freed record per save, of which 2 or 3 (over 12 runs)
  // are not yet overwritten when the search runs, as heap reuse goes. The library's own
  // must all be gone: one of them per load or signature would be 20 or more here.
  for (const [mode, most] of [
    ['plain', 0],
    ['encrypt', 3],
  ] as const) {
    it(`leaves no copy of its own of an auth value once the key is gone (${mode} sessions)`, () => {
      // A process of its own, to search all of its memory after a full GC.
      const fixture = fileURLToPath(new URL('./fixtures/auth-residue.ts', import.meta.url));
      const copies = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fixture, mode], {
        env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
        encoding: 'utf8',
      });
      assert.ok(Number(copies) <= most, `${copies.trim()} copies of the auth value left in memory`);
    });
  }

  it('copies the auth value it is given, and zeroes only its own copy', async () => {
    const given = Buffer.from('caller-owned');
    let seen: Uint8Array | undefined;
    await withAuth(given, async (bytes) => {
      seen = bytes;
      assert.deepEqual(Buffer.from(bytes!), given);
    });
    assert.notEqual(seen, given);
    assert.ok(
      seen!.every((b) => b === 0),
      'the copy is zeroed',
    );
    assert.equal(given.toString(), 'caller-owned');
  });

  describe('on the wire (a recording relay between the TCTI and swtpm)', () => {
    async function signThroughRelay(encrypt: boolean): Promise<{ wire: Buffer; digest: Buffer; auth: Buffer }> {
      const relay = await startChipRelay({ tcti: swtpm.tcti, capture: true });
      try {
        const viaRelay = await Tpm.open({ tcti: relay.tcti, encrypt });
        try {
          const auth = Buffer.from('wiretap-me-0123456789');
          const key = await viaRelay.createKey({ alg: 'ES256', auth });
          const data = Buffer.from(`message signed with encrypt=${encrypt}`);
          await key.sign(data);
          return { wire: relay.captured(), digest: createHash('sha256').update(data).digest(), auth };
        } finally {
          await viaRelay.close();
        }
      } finally {
        await relay.close();
      }
    }

    it('by default neither the digest being signed nor the auth value crosses in clear', async () => {
      const { wire, digest, auth } = await signThroughRelay(true);
      assert.ok(wire.length > 1000, 'the relay saw the traffic');
      assert.equal(wire.indexOf(digest), -1, 'the digest is not on the wire');
      assert.equal(wire.indexOf(auth), -1, 'the auth value is not on the wire');
    });

    it('with encrypt: false both do (so the relay really sees the link)', async () => {
      const { wire, digest, auth } = await signThroughRelay(false);
      assert.notEqual(wire.indexOf(digest), -1);
      assert.notEqual(wire.indexOf(auth), -1);
    });
  });

  it('salts with the EK and pins the salt key Name; another Name is ERR_TPM_CONNECTION', async () => {
    const ek = await Tpm.open({ tcti: swtpm.tcti, saltKey: 'ek' });
    const name = ek.saltKeyName;
    try {
      assert.match(name, /^000b[0-9a-f]{64}$/, 'a SHA-256 Name');
      assert.notEqual(name, tpm.saltKeyName, 'the EK is not the storage primary');
      const key = await ek.createKey({ alg: 'ES256' });
      assert.equal((await key.sign(Buffer.from('ek-salted'))).length, 64);
    } finally {
      await ek.close();
    }
    const pinned = await Tpm.open({ tcti: swtpm.tcti, saltKey: 'ek', saltKeyName: name });
    await pinned.close();
    const other = `000b${'00'.repeat(32)}`;
    await assert.rejects(Tpm.open({ tcti: swtpm.tcti, saltKey: 'ek', saltKeyName: other }), {
      code: 'ERR_TPM_CONNECTION',
      message: /pinned Name/,
    });
    await assert.rejects(Tpm.open({ tcti: swtpm.tcti, saltKeyName: 'xyz' }), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('starts a new session by itself when the TPM drops it', async () => {
    const key = await tpm.createKey({ alg: 'ES256' });
    // Idle, the session is saved, not loaded; another process flushes it either way.
    tpm2(swtpm.tcti, 'flushcontext', '-s');
    tpm2(swtpm.tcti, 'flushcontext', '-l');
    const sessions = () =>
      ['loaded', 'saved'].map((kind) => tpm2(swtpm.tcti, 'getcap', `handles-${kind}-session`).trim()).join('');
    assert.equal(sessions(), '');
    assert.equal((await key.sign(Buffer.from('after the flush'))).length, 64);
    assert.notEqual(sessions(), '');
  });
});
