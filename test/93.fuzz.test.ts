/**
 * Hostile input: mutated tokens, key files and service-account descriptors. Whatever
 * comes in, the library answers with a TpmJwtError carrying a code, never anything
 * else. Seeded, so a failure names the seed and case to replay.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { jwt, SoftwareSigner, Tpm, TpmJwtError } from '../lib/index.js';
import { signerFromServiceAccountInfo } from '../lib/crypt/service-account.js';
import type { KeyFile } from '../lib/tpm/key-file.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { prng } from './helpers/prng.js';
import { useSwtpm } from './helpers/swtpm.js';

const SEED = Number(process.env['TPM_JWT_FUZZ_SEED'] ?? 20261122);
const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

type Outcome<T> = { code: 'ok'; value: T } | { code: string };

/** Runs `call` and accepts a result or a TpmJwtError with a code; anything else fails. */
async function onlyTypedErrors<T>(what: string, call: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { code: 'ok', value: await call() };
  } catch (err) {
    assert.ok(err instanceof TpmJwtError, `${what}: threw ${String((err as Error)?.stack ?? err)}`);
    assert.match(err.code, /^ERR_[A-Z_]+$/, what);
    return { code: err.code };
  }
}

type Random = ReturnType<typeof prng>;

const STRANGE = ['', '.', '..', '=', '+', '/', '\u0000', 'é', '\ud83d\ude00', '\ud800', 'eyJ', '%00', ' '];
const HOSTILE_SEGMENTS = (r: Random) => [
  b64('['.repeat(5000) + ']'.repeat(5000)),
  b64('{"a":'.repeat(3000) + '1' + '}'.repeat(3000)),
  b64('{"alg":"RS256","alg":"none"}'),
  b64({ alg: 'RS256', crit: ['exp'] }),
  b64({ alg: 'RS256', b64: false, crit: ['b64'] }),
  b64({ alg: ['RS256'] }),
  b64({ alg: 'HS256' }),
  b64({ alg: 'RS256', kid: { toString: 1 } }),
  b64({ exp: '9999999999', iat: 'now' }),
  b64({ exp: 1e400, iat: -1 }),
  b64({ aud: 5, exp: Number.MAX_SAFE_INTEGER, iat: 0 }),
  b64({ aud: [null, {}], exp: 2e9, iat: 1e9 }),
  b64({ __proto__: { admin: true }, exp: 2e9, iat: 1e9 }),
  b64('null'),
  b64('"just a string"'),
  b64('\ufeff{}'),
  'A'.repeat(70_000),
  Buffer.from(Array.from({ length: 64 }, () => r.int(256))).toString('base64url'),
];

function mutate(token: string, r: Random): string {
  const parts = token.split('.');
  switch (r.int(10)) {
    case 0: {
      const i = r.int(token.length);
      return token.slice(0, i) + String.fromCharCode(r.int(128)) + token.slice(i + 1);
    }
    case 1:
      return token.slice(0, r.int(token.length));
    case 2: {
      const i = r.int(token.length);
      return token.slice(0, i) + r.pick(STRANGE) + token.slice(i);
    }
    case 3:
      parts[r.int(3)] = r.pick(HOSTILE_SEGMENTS(r));
      return parts.join('.');
    case 4:
      return [parts[1], parts[0], parts[2]].join('.');
    case 5:
      return parts.concat(parts.slice(0, r.int(3) + 1)).join('.');
    case 6:
      return parts.map((p) => p.split('').reverse().join('')).join('.');
    case 7: {
      const bytes = Buffer.from(parts[r.int(2)]!, 'base64url');
      if (bytes.length > 0) bytes[r.int(bytes.length)]! ^= 1 << r.int(8);
      parts[r.int(2)] = bytes.toString('base64url');
      return parts.join('.');
    }
    case 8:
      return token.replace(/[A-Za-z]/g, (c) =>
        r.int(20) === 0 ? (c.toUpperCase() === c ? c.toLowerCase() : c.toUpperCase()) : c,
      );
    default:
      return Array.from({ length: r.int(6) }, () => r.pick(HOSTILE_SEGMENTS(r)).slice(0, r.int(200))).join('.');
  }
}

describe('93 fuzz: hostile tokens, key files and descriptors', function () {
  this.timeout(300_000);
  const swtpm = useSwtpm();

  it('decode and decodeHeader throw only coded TpmJwtErrors for 20,000 mutated tokens', async () => {
    const r = prng(SEED);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'k');
    const now = Math.floor(Date.now() / 1000);
    const seeds = await Promise.all([
      jwt.encode(signer, { iss: 'a', aud: 'https://x/', iat: now, exp: now + 600 }),
      jwt.encode(signer, { iss: 'b', scope: 's', iat: now, exp: now + 600, nested: { deep: [1, 2, { x: 'y' }] } }),
    ]);
    const certsForms = [publicKey, { k: publicKey.export({ type: 'spki', format: 'pem' }).toString() }];
    const payloads = seeds.map((token) => jwt.decode(token, { verify: false }));
    const codes = new Map<string, number>();
    const deadline = Date.now() + 240_000;
    let cases = 0;
    for (; cases < 20_000 && Date.now() < deadline; cases++) {
      const token = mutate(r.pick(seeds), r);
      const what = `seed ${SEED} case ${cases}`;
      await onlyTypedErrors(`${what} decodeHeader`, () => jwt.decodeHeader(token));
      const outcome = await onlyTypedErrors(`${what} decode`, () =>
        jwt.decode(token, { certs: r.pick(certsForms) as never, audience: 'https://x/' }),
      );
      // Mutation keeps some tokens intact (e.g. case flips that miss); whatever
      // verifies must carry a payload that was signed, unchanged.
      if ('value' in outcome) {
        const payload = outcome.value;
        assert.ok(
          (await Promise.all(payloads)).some((p) => isDeepStrictEqual(p, payload)),
          `${what}: a changed payload verified: ${JSON.stringify(payload)}`,
        );
      }
      codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
    }
    assert.equal(cases, 20_000, 'all cases ran within the time bound');
    assert.ok(codes.size >= 4, `the mutations reach many checks: ${[...codes.keys()].join(', ')}`);
    assert.ok((codes.get('ok') ?? 0) > 0, 'some mutations leave the token intact, and it verifies');
    assert.ok((codes.get('ERR_JWS_SIGNATURE_VERIFICATION_FAILED') ?? 0) > 0, 'changed payloads are caught');
  });

  it('refuses an oversized token before reading it', () => {
    assert.throws(() => jwt.decodeHeader(`${'a'.repeat(70_000)}.b.c`), {
      code: 'ERR_JWS_INVALID',
      message: /longer than/,
    });
  });

  it('decodeKeyFile and loadKey throw only coded TpmJwtErrors for 2,000 mutated key files', async () => {
    const r = prng(SEED + 1);
    const tpm = await Tpm.open({ tcti: swtpm.tcti, encrypt: false });
    swtpm.cleanup(() => tpm.close());
    const pems = [
      (await tpm.createKey({ alg: 'ES256' })).toPem(),
      (await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [16] } })).toPem(),
    ];
    const originals = pems.map((pem) => decodeKeyFile(pem));
    const sameKey = (a: KeyFile, b: KeyFile) =>
      a.parent === b.parent && Buffer.from(a.public).equals(b.public) && Buffer.from(a.private).equals(b.private);
    let unchanged = 0;
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const pem = r.pick(pems);
      const der = Buffer.from(pem.split('\n').slice(1, -2).join(''), 'base64');
      const mutated = Buffer.from(der);
      switch (r.int(4)) {
        case 0:
          mutated[r.int(mutated.length)] = r.int(256);
          break;
        case 1:
          mutated[r.int(mutated.length)]! ^= 1 << r.int(8);
          break;
        case 2:
          mutated[r.int(8)] = r.int(256); // the outer lengths
          break;
        default:
          break;
      }
      const cut = r.int(4) === 0 ? mutated.subarray(0, r.int(mutated.length)) : mutated;
      const text = `-----BEGIN TSS2 PRIVATE KEY-----\n${cut.toString('base64')}\n-----END TSS2 PRIVATE KEY-----\n`;
      const what = `seed ${SEED + 1} case ${i}`;
      await onlyTypedErrors(`${what} decodeKeyFile`, () => decodeKeyFile(text));
      const outcome = await onlyTypedErrors(`${what} loadKey`, () => tpm.loadKey(text));
      if (cut.equals(der)) {
        unchanged++;
        assert.equal(outcome.code, 'ok', `${what}: an unchanged key file must load`);
      } else if (outcome.code === 'ok') {
        // A mutation the TPM cannot see (the emptyAuth hint, a policy byte) may load,
        // but only if the key itself, its blobs and parent, is untouched.
        const decoded = decodeKeyFile(text);
        assert.ok(
          originals.some((o) => sameKey(o, decoded)),
          `${what}: a key file with changed blobs loaded`,
        );
      } else {
        refused++;
      }
    }
    assert.ok(unchanged > 0 && refused > 1000, `${unchanged} unchanged, ${refused} refused of 2000`);
  });

  it('refuses every malformed service-account descriptor with the code of what is wrong', async () => {
    const r = prng(SEED + 2);
    const tpm = await swtpm.openTpm({ encrypt: false });
    await tpm.createKey({ alg: 'ES256', persist: 0x81000001 });
    swtpm.cleanup(() => tpm.evict(0x81000001));
    const base = {
      type: 'tpm_service_account',
      client_email: 'sa@p',
      private_key_id: 'k',
      tpm: { key: 'handle:0x81000001', tcti: swtpm.tcti },
    };
    const signer = await signerFromServiceAccountInfo(base);
    assert.equal((await signer.sign(Buffer.from('x'))).length, 64, 'the unmutated descriptor signs');
    await signer.close?.();

    const notAFile = swtpm.tempDir('fuzz');
    writeFileSync(path.join(notAFile, 'text.pem'), 'not a key\n');
    const INVALID = 'ERR_KEY_FILE_INVALID';
    const ARGUMENT = 'ERR_INVALID_ARGUMENT';
    // [where, field, value, code]: each one alone is enough to refuse the descriptor.
    type Flaw = ['info' | 'tpm', string, unknown, string];
    const flaws: Flaw[] = [
      ...[null, 0, '', 'x', [], {}, 'service_account'].map((v): Flaw => ['info', 'type', v, INVALID]),
      ...[null, 0, '', [], {}, true].map((v): Flaw => ['info', 'client_email', v, INVALID]),
      ...[null, 0, 'x', [], true].map((v): Flaw => ['info', 'tpm', v, INVALID]),
      ...[null, 0, [], {}, true, '', path.join(notAFile, 'missing.pem'), path.join(notAFile, 'text.pem')].map(
        (v): Flaw => ['tpm', 'key', v, INVALID],
      ),
      ['tpm', 'key', 'handle:zz', ARGUMENT],
      ['tpm', 'key', 'handle:0x41000001', ARGUMENT],
      ['tpm', 'key', '0x81000002', 'ERR_TPM_KEY_NOT_FOUND'],
      ...[0, [], {}].map((v): Flaw => ['tpm', 'tcti', v, ARGUMENT]),
      ['tpm', 'tcti', 'swtpm:host=127.0.0.1,port=1', 'ERR_TPM_CONNECTION'],
      ['tpm', 'tcti', 'no-such-tcti', ARGUMENT],
      ['tpm', 'tcti', 'cmd:true', ARGUMENT],
      ...['TPM_JWT_FUZZ_UNSET', 0, '', 'A B', 'X=1', '$HOME'].map((v): Flaw => ['tpm', 'auth_env', v, INVALID]),
      ...['', 0, 'sha1:0', 'sha256:99', 'sha256:'].map((v): Flaw => ['tpm', 'pcrs', v, ARGUMENT]),
    ];
    const apply = (flawed: Flaw[]) => {
      const info = structuredClone(base) as Record<string, unknown> & { tpm: Record<string, unknown> };
      for (const [where, field, value] of flawed) {
        const target = where === 'info' ? info : (info.tpm as Record<string, unknown> | null);
        if (target !== null && typeof target === 'object') target[field] = value;
      }
      return info;
    };
    const refuse = async (what: string, flawed: Flaw[]) => {
      const outcome = await onlyTypedErrors(what, async () => {
        const signer = await signerFromServiceAccountInfo(apply(flawed) as never);
        await signer.close?.();
      });
      const codes = flawed.map((flaw) => flaw[3]);
      assert.ok(codes.includes(outcome.code), `${what}: expected ${codes.join(' or ')}, got ${outcome.code}`);
    };
    for (const flaw of flaws) await refuse(`${JSON.stringify(flaw.slice(0, 3))}`, [flaw]);
    for (let i = 0; i < 200; i++) {
      await refuse(`seed ${SEED + 2} case ${i}`, [r.pick(flaws), r.pick(flaws)]);
    }
  });
});
