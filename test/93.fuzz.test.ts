/**
 * Hostile input: mutated tokens, key files, service-account descriptors and attestation
 * documents. Whatever comes in, the library answers with a TpmJwtError carrying a code,
 * never anything else, and an attestation fails exactly the checks that read what was
 * changed. Seeded, so a failure names the seed and case to replay.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { jwt, SoftwareSigner, Tpm, TpmJwtError, type AttestationDocument } from '../lib/index.js';
import { MAX_SIGNATURE_CHECKS } from '../lib/attest/certificates.js';
import { createActivationChallenge } from '../lib/attest/challenge.js';
import { verifyAttestation } from '../lib/attest/verify.js';
import { signerFromServiceAccountInfo } from '../lib/crypt/service-account.js';
import type { KeyFile } from '../lib/tpm/key-file.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { forgeAttestation } from './helpers/forged-attestation.js';
import { prng } from './helpers/prng.js';
import { countSignatureChecks } from './helpers/signature-checks.js';
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

/** Which checks read each part of an attestation: a mutation there may fail these and no others. */
const DEPENDS: Record<string, readonly string[]> = {
  key: ['certified-name', 'key-attributes'],
  attest: ['certify-info', 'certify-signature', 'qualifying-data', 'certified-name'],
  signature: ['certify-signature'],
  ak: ['ak-bound', 'ak-attributes', 'certify-info', 'certify-signature'],
  // The AK certificate must name the device a trusted EK certificate names.
  ek: ['ek-certificate', 'ak-bound'],
  akCertificate: ['ak-bound'],
};

/** Values that break size fields and counters: empty, one past, the largest. */
const EDGES_16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0x7fff, 0x8000, 0xfffe, 0xffff];

/** A TPM structure's bytes, mutated the ways a hostile device would: sizes, truncations, flips. */
function mutateStructure(bytes: Buffer, r: Random): Buffer {
  const copy = Buffer.from(bytes);
  const at = r.int(Math.max(1, copy.length - 1));
  switch (r.int(6)) {
    case 0: // a size field (or any 16-bit field) set to an edge value
      if (copy.length >= 2) copy.writeUInt16BE(r.pick(EDGES_16), at);
      return copy;
    case 1: // a 32-bit field (attributes, magic, counters) set to an edge
      if (copy.length >= 4)
        copy.writeUInt32BE(r.pick([0, 1, 0x7fffffff, 0x80000000, 0xffffffff]), r.int(copy.length - 3));
      return copy;
    case 2:
      return copy.subarray(0, at);
    case 3:
      return Buffer.concat([copy, Buffer.alloc(1 + r.int(600), r.int(256))]);
    case 4:
      copy[at] = copy[at]! ^ (1 << r.int(8));
      return copy;
    default: // a run of bytes repeated, as a sloppy encoder would
      return Buffer.concat([copy.subarray(0, at), copy.subarray(at, at + 1 + r.int(40)), copy.subarray(at)]);
  }
}

describe('93 fuzz: hostile attestation documents and activation documents', function () {
  this.timeout(120_000);
  const forged = forgeAttestation();
  const trust = { roots: forged.roots, akRoots: forged.akRoots };
  const r = prng(SEED + 3);

  it('decides 3,000 mutated attestations, each failing only the checks that read what changed', () => {
    const parts = {
      key: (d: AttestationDocument) => ({ get: d.key.public, set: (v: string) => (d.key.public = v) }),
      attest: (d: AttestationDocument) => ({ get: d.certify.attest, set: (v: string) => (d.certify.attest = v) }),
      signature: (d: AttestationDocument) => ({
        get: d.certify.signature,
        set: (v: string) => (d.certify.signature = v),
      }),
      ak: (d: AttestationDocument) => ({ get: d.ak.public, set: (v: string) => (d.ak.public = v) }),
    };
    const intermediate = forged.doc.ek.chain[0]!;
    const stranger = forgeAttestation({ ekIntermediate: { subject: 'a stranger' } }).doc.ek.chain[0]!;
    const pemFlip = (pem: string) => {
      const at = 28 + r.int(pem.length - 60);
      return `${pem.slice(0, at)}${r.pick(['A', '/', '+', '=', '-', '\n'])}${pem.slice(at + 1)}`;
    };
    let decided = 0;
    for (let i = 0; i < 3000; i++) {
      const what = `seed ${SEED + 3} case ${i}`;
      const doc = structuredClone(forged.doc);
      let part: string;
      let mayPass = false;
      const kind = r.int(10);
      if (kind < 6) {
        part = r.pick(Object.keys(parts));
        const field = parts[part as keyof typeof parts](doc);
        field.set(mutateStructure(Buffer.from(field.get, 'base64'), r).toString('base64'));
        mayPass = field.get === parts[part as keyof typeof parts](forged.doc).get;
      } else if (kind === 6) {
        // Duplicated and reordered chain certificates, strangers among them: the same verdict.
        part = 'ek';
        const count = 1 + r.int(12);
        doc.ek.chain = Array.from({ length: count }, () => (r.int(3) === 0 ? stranger : intermediate));
        if (!doc.ek.chain.includes(intermediate)) doc.ek.chain[r.int(count)] = intermediate;
        mayPass = true;
      } else if (kind === 7) {
        part = 'ek';
        const cert = doc.ek.certificates[0]!;
        cert.pem = r.int(2) === 0 ? pemFlip(cert.pem) : cert.pem.slice(0, r.int(cert.pem.length));
        if (r.int(2) === 0) doc.ek.chain = [pemFlip(intermediate)];
      } else if (kind === 8) {
        part = 'akCertificate';
        doc.ak.certificate = r.int(2) === 0 ? pemFlip(doc.ak.certificate!) : stranger;
        // A flip PEM decoding skips over (a line break, padding) leaves the same DER.
        mayPass = sameDer(doc.ak.certificate, forged.doc.ak.certificate!);
      } else {
        // Huge numbers and wrong types where strings belong: not an attestation at all.
        part = 'json';
        const huge = r.pick([1e308, -1, 2 ** 53, Number.MAX_VALUE, '9'.repeat(400), [], {}, null]);
        const target = r.pick(['kid', 'email', 'index', 'handle', 'format'] as const);
        if (target === 'index') (doc.ek.certificates[0] as unknown as Record<string, unknown>).index = huge;
        else if (target === 'handle') (doc.ak as unknown as Record<string, unknown>).handle = huge;
        else (doc as unknown as Record<string, unknown>)[target] = huge;
        mayPass = target === 'index' || target === 'handle';
      }
      const { result, checks } = countSignatureChecks(() =>
        (() => {
          try {
            return verifyAttestation(doc, trust);
          } catch (err) {
            assert.ok(err instanceof TpmJwtError, `${what}: threw ${String((err as Error)?.stack ?? err)}`);
            assert.equal(err.code, 'ERR_INVALID_ARGUMENT', what);
            return undefined;
          }
        })(),
      );
      assert.ok(checks <= 3 * MAX_SIGNATURE_CHECKS, `${what}: ${checks} signature checks`);
      if (!result) continue;
      decided++;
      const failed = result.reasons.filter((reason) => !reason.ok).map((reason) => reason.check);
      if (part === 'json' || (part === 'ek' && !mayPass && failed.length === 0)) continue;
      const allowed = DEPENDS[part]!;
      assert.deepEqual(
        failed.filter((check) => !allowed.includes(check)),
        [],
        `${what} (${part}): ${JSON.stringify(result.reasons)}`,
      );
      if (!mayPass) assert.ok(failed.length > 0, `${what} (${part}) passed altered`);
      assert.equal(result.ok, failed.length === 0, what);
    }
    // Most cases reach a verdict: the fuzz tests the checks, not only the parser.
    assert.ok(decided > 2000, `${decided} of 3000 decided`);
  });

  it('makes a challenge or refuses with ERR_INVALID_ARGUMENT for 1,000 mutated attestations and activations', () => {
    const { challenge, expected } = createActivationChallenge(forged.doc, { roots: forged.roots, ek: 'ecc' });
    assert.equal(challenge.format, 'tpm-jwt-activation-challenge/1');
    for (let i = 0; i < 1000; i++) {
      const what = `seed ${SEED + 4} case ${i}`;
      const doc = structuredClone(forged.doc);
      doc.ak.public = mutateStructure(Buffer.from(doc.ak.public, 'base64'), r).toString('base64');
      if (r.int(3) === 0) doc.ek.chain = Array(1 + r.int(14)).fill(forged.doc.ek.chain[0]!);
      try {
        const made = createActivationChallenge(doc, { roots: forged.roots, ek: 'ecc' });
        assert.equal(made.challenge.format, 'tpm-jwt-activation-challenge/1', what);
      } catch (err) {
        assert.ok(err instanceof TpmJwtError && err.code === 'ERR_INVALID_ARGUMENT', `${what}: ${String(err)}`);
      }
      // A response the device never made, and expectations mangled on the way: never a pass.
      const secret = mutateStructure(Buffer.from(expected.secretDigest, 'base64'), r).toString('base64');
      const response = r.pick([
        { format: 'tpm-jwt-activation-response/1', secret },
        { format: 'tpm-jwt-activation-response/1', secret: 'A'.repeat(4 * (1 + r.int(30000))) },
        { format: 'tpm-jwt-activation-response/1', secret: 12 },
        JSON.stringify({ format: 'tpm-jwt-activation-response/1', secret }),
        'not json',
      ]);
      const mangled = r.int(2) === 0 ? expected : { ...expected, akName: r.pick(['', '00', 'zz', 'ab'.repeat(40)]) };
      try {
        const verdict = verifyAttestation(forged.doc, {
          roots: forged.roots,
          activation: { expected: mangled, response },
        });
        assert.deepEqual(
          verdict.reasons.filter((reason) => !reason.ok).map((reason) => reason.check),
          ['ak-bound'],
          what,
        );
      } catch (err) {
        assert.ok(err instanceof TpmJwtError && err.code === 'ERR_INVALID_ARGUMENT', `${what}: ${String(err)}`);
      }
    }
  });
});

/** Whether two PEM texts hold the same certificate. */
function sameDer(a: string, b: string): boolean {
  try {
    return new X509Certificate(a).raw.equals(new X509Certificate(b).raw);
  } catch {
    return false;
  }
}
