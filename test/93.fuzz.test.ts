/**
 * Hostile input: mutated tokens, key files and service-account descriptors. Whatever
 * comes in, the library answers with a TpmJwtError carrying a code, never anything
 * else. Seeded, so a failure names the seed and case to replay.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';

import { jwt, SoftwareSigner, Tpm, TpmJwtError } from '../lib/index.js';
import { signerFromServiceAccountInfo } from '../lib/crypt/service-account.js';
import { decodeKeyFile } from '../lib/tpm/key-file.js';
import { prng } from './helpers/prng.js';
import { useSwtpm } from './helpers/swtpm.js';

const SEED = Number(process.env['TPM_JWT_FUZZ_SEED'] ?? 20261122);
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Runs `call` and accepts a result or a TpmJwtError with a code; anything else fails. */
async function onlyTypedErrors(what: string, call: () => unknown): Promise<'ok' | string> {
  try {
    await call();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof TpmJwtError, `${what}: threw ${String((err as Error)?.stack ?? err)}`);
    assert.match(err.code, /^ERR_[A-Z_]+$/, what);
    return err.code;
  }
}

type Random = ReturnType<typeof prng>;

const STRANGE = ['', '.', '..', '=', '+', '/', '\u0000', 'é', '\ud83d\ude00', '\ud800', 'eyJ', '%00', ' '];
const HOSTILE_SEGMENTS = (r: Random) => [
  b64('[' .repeat(5000) + ']'.repeat(5000)),
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
      return token.replace(/[A-Za-z]/g, (c) => (r.int(20) === 0 ? c.toUpperCase() === c ? c.toLowerCase() : c.toUpperCase() : c));
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
    const codes = new Map<string, number>();
    const deadline = Date.now() + 240_000;
    let cases = 0;
    for (; cases < 20_000 && Date.now() < deadline; cases++) {
      const token = mutate(r.pick(seeds), r);
      const what = `seed ${SEED} case ${cases}`;
      await onlyTypedErrors(`${what} decodeHeader`, () => jwt.decodeHeader(token));
      const code = await onlyTypedErrors(`${what} decode`, () =>
        jwt.decode(token, { certs: r.pick(certsForms) as never, audience: 'https://x/' }),
      );
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    assert.equal(cases, 20_000, 'all cases ran within the time bound');
    assert.ok(codes.size >= 4, `the mutations reach many checks: ${[...codes.keys()].join(', ')}`);
    // Mutation keeps some tokens intact (e.g. case-flips that miss); none may verify
    // with a changed payload, which the signature makes impossible.
  });

  it('refuses an oversized token before reading it', () => {
    assert.throws(() => jwt.decodeHeader(`${'a'.repeat(70_000)}.b.c`), { code: 'ERR_JWS_INVALID', message: /longer than/ });
  });

  it('decodeKeyFile and loadKey throw only coded TpmJwtErrors for 2,000 mutated key files', async () => {
    const r = prng(SEED + 1);
    const tpm = await Tpm.open({ tcti: swtpm.tcti, encrypt: false });
    swtpm.cleanup(() => tpm.close());
    const pems = [
      (await tpm.createKey({ alg: 'ES256' })).toPem(),
      (await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [16] } })).toPem(),
    ];
    let loaded = 0;
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
      if ((await onlyTypedErrors(`${what} loadKey`, () => tpm.loadKey(text))) === 'ok') loaded++;
    }
    assert.ok(loaded < 2000, 'mutations are noticed');
  });

  it('service-account descriptors throw only coded TpmJwtErrors', async () => {
    const r = prng(SEED + 2);
    const base = { type: 'tpm_service_account', client_email: 'sa@p', private_key_id: 'k', tpm: { key: 'handle:0x81000001', tcti: swtpm.tcti } };
    const values: unknown[] = [null, 0, -1, '', 'x', [], {}, true, 'handle:zz', '../../etc/passwd', '0x81000001', { key: 1 }, 'sha1:0', 'sha256:99'];
    for (let i = 0; i < 300; i++) {
      const info = structuredClone(base) as Record<string, unknown> & { tpm: Record<string, unknown> };
      const target = r.int(2) === 0 ? info : info.tpm;
      const field = r.pick(['type', 'client_email', 'private_key', 'key', 'tcti', 'auth_env', 'pcrs', 'tpm']);
      target[field] = r.pick(values);
      await onlyTypedErrors(`seed ${SEED + 2} case ${i}`, async () => {
        const signer = await signerFromServiceAccountInfo(info as never);
        await signer.close?.();
      });
    }
  });
});
