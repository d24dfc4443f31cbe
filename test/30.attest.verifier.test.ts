/**
 * The attestation verifier, with no TPM: every check run against a software-forged
 * attestation (test/helpers/forged-attestation), one spoiled field at a time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { TpmJwtError, type ActivationResponse, type AttestationDocument } from '../lib/index.js';
import { createActivationChallenge as challengeSync } from '../lib/attest/challenge.js';
import { verifyAttestation as verifySync } from '../lib/attest/verify.js';
import { keyBinding } from '../lib/wire/attestation-format.js';
import {
  ALG,
  ATTR,
  forgeAttestation,
  reviewersForgery,
  TPM_ST_ATTEST_QUOTE,
  type ForgeOptions,
} from './helpers/forged-attestation.js';
import { prng } from './helpers/prng.js';
import { failing, reason } from './helpers/verdict.js';

const DAY = 86_400_000;

/** A copy of the document with one base64 field's bytes replaced by `edit`'s. */
function edit(doc: AttestationDocument, field: 'attest' | 'signature' | 'ak' | 'key', change: (b: Buffer) => Buffer) {
  const copy = structuredClone(doc);
  const get = {
    attest: copy.certify.attest,
    signature: copy.certify.signature,
    ak: copy.ak.public,
    key: copy.key.public,
  };
  const value = change(Buffer.from(get[field], 'base64')).toString('base64');
  if (field === 'attest') copy.certify.attest = value;
  else if (field === 'signature') copy.certify.signature = value;
  else if (field === 'ak') copy.ak.public = value;
  else copy.key.public = value;
  return copy;
}

describe('30 attestation verifier against a software-forged attestation (no TPM)', () => {
  const forged = forgeAttestation();
  const trust = { roots: forged.roots, akRoots: forged.akRoots };

  it('passes the forgery under its own roots: nothing but the roots tells software from a TPM', () => {
    const verdict = verifySync(forged.doc, trust);
    assert.deepEqual(failing(verdict), [], JSON.stringify(verdict.reasons, null, 1));
    assert.equal(verdict.jwk?.kid, 'forged-kid');
    assert.match(reason(verdict, 'ak-bound'), /AK certificate CN=forged device 42 names this AK/);
  });

  it("fails the review's forge.ts: one leaf as EK and AK certificate, a software AK", () => {
    const { doc, roots, akRoots } = reviewersForgery();
    const withEkRoots = verifySync(doc, { roots });
    assert.deepEqual(failing(withEkRoots), ['ek-certificate', 'ak-bound']);
    assert.match(reason(withEkRoots, 'ek-certificate'), /CN=anything is not an EK certificate: nothing marks it/);
    assert.match(reason(withEkRoots, 'ak-bound'), /nothing ties the AK.*not checked: no AK roots/);
    // Even trusted as an AK root, the root vouches for nothing: the leaf is the EK certificate.
    const withAkRoots = verifySync(doc, { roots, akRoots });
    assert.deepEqual(failing(withAkRoots), ['ek-certificate', 'ak-bound']);
    assert.match(reason(withAkRoots, 'ak-bound'), /the AK certificate is one of the EK certificates/);
    assert.equal(withAkRoots.jwk, undefined);
  });

  it('takes an AK certificate only under AK roots given apart from the EK roots', () => {
    const verdict = verifySync(forged.doc, { roots: forged.roots });
    assert.deepEqual(failing(verdict), ['ak-bound']);
    assert.match(reason(verdict, 'ak-bound'), /not checked: no AK roots/);
    const ekRootsForAk = verifySync(forged.doc, { roots: forged.roots, akRoots: forged.roots });
    assert.deepEqual(failing(ekRootsForAk), ['ak-bound']);
    assert.match(
      reason(ekRootsForAk, 'ak-bound'),
      /AK certificate: CN=forged device 42 .* does not chain to a given root/,
    );
  });

  /** What is spoiled, how, the checks that fail, and why the telling one fails. */
  const cases: [string, ForgeOptions, string[], RegExp][] = [
    ['the magic', { magic: 0xff544348 }, ['certify-info'], /magic is not TPM_GENERATED_VALUE/],
    ['the type (a quote)', { type: TPM_ST_ATTEST_QUOTE }, ['certify-info', 'certified-name'], /not a TPM2_Certify/],
    [
      'the qualified signer (the AK as an owner primary)',
      { signerHierarchy: 'owner' },
      ['certify-info'],
      /signer is not this AK as an endorsement-hierarchy primary/,
    ],
    [
      'AK not restricted',
      { akAttributes: ATTR.sign | ATTR.fixedTPM | ATTR.fixedParent },
      ['ak-attributes'],
      /not restricted/,
    ],
    [
      'AK also decrypt',
      { akAttributes: ATTR.restricted | ATTR.sign | ATTR.decrypt | ATTR.fixedTPM | ATTR.fixedParent },
      ['ak-attributes'],
      /decrypt/,
    ],
    [
      'AK not fixedTPM',
      { akAttributes: ATTR.restricted | ATTR.sign | ATTR.fixedParent },
      ['ak-attributes'],
      /not fixedTPM/,
    ],
    [
      'AK not fixedParent',
      { akAttributes: ATTR.restricted | ATTR.sign | ATTR.fixedTPM },
      ['ak-attributes'],
      /not fixedParent/,
    ],
    ['AK Name in SHA-1', { akNameAlg: ALG.SHA1 }, ['ak-attributes'], /name algorithm is SHA-1/],
    [
      'AK Name in SM3 (no crash: a reason)',
      { akNameAlg: ALG.SM3 },
      ['ak-attributes', 'certify-info'],
      /name algorithm is hash algorithm 0x0012/,
    ],
    [
      'AK scheme hash SHA-1',
      { akSchemeHash: ALG.SHA1 },
      ['ak-attributes', 'certify-signature'],
      /signing scheme's hash is SHA-1/,
    ],
    [
      "a signature in SHA-1, not the AK's SHA-256 scheme",
      { signatureHash: ALG.SHA1 },
      ['certify-signature'],
      /not in the AK's scheme/,
    ],
    [
      'key not fixedTPM',
      { keyAttributes: ATTR.sign | ATTR.fixedParent | ATTR.sensitiveDataOrigin },
      ['key-attributes'],
      /not fixedTPM/,
    ],
    [
      'key not fixedParent',
      { keyAttributes: ATTR.sign | ATTR.fixedTPM | ATTR.sensitiveDataOrigin },
      ['key-attributes'],
      /not fixedParent/,
    ],
    [
      'key not sign',
      { keyAttributes: ATTR.fixedTPM | ATTR.fixedParent | ATTR.sensitiveDataOrigin },
      ['key-attributes'],
      /not sign/,
    ],
    [
      'key also decrypt',
      { keyAttributes: ATTR.sign | ATTR.decrypt | ATTR.fixedTPM | ATTR.fixedParent | ATTR.sensitiveDataOrigin },
      ['key-attributes'],
      /decrypt/,
    ],
    [
      'key imported (not sensitiveDataOrigin)',
      { keyAttributes: ATTR.sign | ATTR.fixedTPM | ATTR.fixedParent },
      ['key-attributes'],
      /not sensitiveDataOrigin.*imported/,
    ],
    ['key Name in SHA-1', { keyNameAlg: ALG.SHA1 }, ['key-attributes'], /name algorithm is SHA-1/],
    [
      'key Name in SM3 (no crash: a reason)',
      { keyNameAlg: ALG.SM3 },
      ['certified-name', 'key-attributes'],
      /name algorithm \(hash algorithm 0x0012\) is not one tpm-jwt computes/,
    ],
    [
      'an EK certificate past its validity',
      { ekCertificate: { notAfter: new Date(Date.now() - DAY) } },
      ['ek-certificate', 'ak-bound'],
      /CN=forged device 42 is outside its validity period/,
    ],
    [
      'an EK certificate not yet valid',
      { ekCertificate: { notBefore: new Date(Date.now() + DAY) } },
      ['ek-certificate', 'ak-bound'],
      /outside its validity period/,
    ],
    [
      'an EK root past its validity',
      { ekRoot: { notAfter: new Date(Date.now() - DAY) } },
      ['ek-certificate', 'ak-bound'],
      /the root CN=forged EK root is outside its validity period/,
    ],
    [
      'an intermediate past its validity',
      { ekIntermediate: { notAfter: new Date(Date.now() - DAY) } },
      ['ek-certificate', 'ak-bound'],
      /the intermediate CN=forged EK intermediate: outside its validity period/,
    ],
    [
      'an intermediate that is not a CA',
      { ekIntermediate: { ca: false } },
      ['ek-certificate', 'ak-bound'],
      /the intermediate CN=forged EK intermediate: it is not a CA certificate/,
    ],
    [
      'an intermediate without keyCertSign',
      { ekIntermediate: { keyUsage: 0x01 } },
      ['ek-certificate', 'ak-bound'],
      /lacks keyCertSign/,
    ],
    [
      'a TLS server certificate as the EK certificate',
      { ekCertificate: { eku: ['1.3.6.1.5.5.7.3.1'], keyUsage: 0x05, tpmManufacturer: false } },
      ['ek-certificate', 'ak-bound'],
      /lacks the EK certificate purpose 2\.23\.133\.8\.1/,
    ],
    [
      'an AK-like (signing) certificate as the EK certificate',
      { ekCertificate: { eku: null, keyUsage: 0x01, tpmManufacturer: false } },
      ['ek-certificate', 'ak-bound'],
      /allows signing/,
    ],
    [
      'a CA certificate as the EK certificate',
      { ekCertificate: { ca: true } },
      ['ek-certificate', 'ak-bound'],
      /is a CA certificate/,
    ],
    [
      'an AK certificate past its validity',
      { akCertificate: { notAfter: new Date(Date.now() - DAY) } },
      ['ak-bound'],
      /AK certificate: CN=forged device 42 is outside its validity period/,
    ],
    [
      'an AK root past its validity',
      { akRoot: { notAfter: new Date(Date.now() - DAY) } },
      ['ak-bound'],
      /the root CN=forged AK root is outside its validity period/,
    ],
    [
      'a TLS client certificate as the AK certificate',
      { akCertificate: { eku: ['1.3.6.1.5.5.7.3.2'] } },
      ['ak-bound'],
      /lacks the AK certificate purpose 2\.23\.133\.8\.3/,
    ],
    [
      "another device's AK certificate",
      { akCertificate: { subject: 'forged device 43' } },
      ['ak-bound'],
      /subject \(CN=forged device 43\) is not that of a trusted EK certificate/,
    ],
  ];
  for (const [what, options, expected, why] of cases) {
    it(`fails ${what}`, () => {
      const { doc, roots, akRoots } = forgeAttestation(options);
      const verdict = verifySync(doc, { roots, akRoots });
      assert.deepEqual(failing(verdict), expected, JSON.stringify(verdict.reasons, null, 1));
      assert.match(verdict.reasons.filter((r) => !r.ok)[0]!.detail, why);
      assert.deepEqual([verdict.ok, verdict.jwk, verdict.email], [false, undefined, undefined], 'no JWK on a failure');
    });
  }

  it("passes GCE-style EK and AK certificates (no extended key usage, only the key's usage)", () => {
    const { doc, roots, akRoots } = forgeAttestation({
      ekCertificate: { eku: null, keyUsage: 0x04, tpmManufacturer: false },
      akCertificate: { eku: null, keyUsage: 0x01 },
    });
    assert.deepEqual(failing(verifySync(doc, { roots, akRoots })), []);
  });

  it('fails ak-bound when activation evidence fails, even with a good AK certificate', () => {
    const { challenge, expected } = challengeSync(forged.doc, { roots: forged.roots });
    assert.equal('secretDigest' in challenge, false, 'the challenge carries no answer');
    const response: ActivationResponse = {
      format: 'tpm-jwt-activation-response/1',
      secret: randomBytes(32).toString('base64'),
    };
    const verdict = verifySync(forged.doc, { ...trust, activation: { expected, response } });
    assert.deepEqual(failing(verdict), ['ak-bound']);
    assert.match(reason(verdict, 'ak-bound'), /did not recover the challenge's secret/);
    // The challenge is not an expectation: a device cannot supply the answer's check.
    assert.throws(() => verifySync(forged.doc, { ...trust, activation: { expected: challenge, response } }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('binds kid and email unambiguously: no email is not an empty one, fields cannot run together', () => {
    assert.notDeepEqual(keyBinding('a', undefined), keyBinding('a', ''));
    assert.notDeepEqual(keyBinding('a\0email\0b', undefined), keyBinding('a', 'b\0email\0'));
    assert.notDeepEqual(keyBinding('a","b', undefined), keyBinding('a', 'b'));
    const verdict = verifySync({ ...forged.doc, email: '' }, trust);
    assert.deepEqual(failing(verdict), ['qualifying-data']);
    assert.equal(verdict.email, undefined);
  });

  it('fails truncated, oversized and padded structures with a reason', () => {
    const check = (doc: AttestationDocument, expected: string[], why: RegExp) => {
      const verdict = verifySync(doc, trust);
      assert.deepEqual(failing(verdict), expected, JSON.stringify(verdict.reasons, null, 1));
      assert.match(reason(verdict, expected[0]!), why);
    };
    const afterAttest = ['certify-info', 'certify-signature', 'qualifying-data', 'certified-name'];
    check(
      edit(forged.doc, 'attest', (b) => b.subarray(0, -1)),
      afterAttest,
      /TPMS_ATTEST is truncated/,
    );
    check(
      edit(forged.doc, 'attest', (b) => Buffer.concat([b, Buffer.of(0)])),
      afterAttest,
      /trailing bytes/,
    );
    check(
      edit(forged.doc, 'key', (b) => b.subarray(0, -1)),
      ['certified-name', 'key-attributes'],
      /truncated/,
    );
    check(
      edit(forged.doc, 'signature', (b) =>
        Buffer.concat([b.subarray(0, 4), Buffer.of(1, 0), Buffer.alloc(256), b.subarray(38)]),
      ),
      ['certify-signature'],
      /r is 256 bytes, more than a TPM sends \(66\)/,
    );
    check(
      edit(forged.doc, 'ak', (b) => Buffer.concat([b, Buffer.of(0)])),
      ['ak-bound', 'ak-attributes', 'certify-info', 'certify-signature'],
      /AK public area has trailing bytes/,
    );
  });

  it('never throws anything but TpmJwtError on altered bytes (seeded)', () => {
    const random = prng(89);
    const fields = ['attest', 'signature', 'ak', 'key'] as const;
    for (let i = 0; i < 300; i++) {
      const doc = edit(forged.doc, random.pick(fields), (b) => {
        const copy = Buffer.from(b);
        const at = random.int(copy.length);
        if (random.int(3) === 0) return copy.subarray(0, at);
        copy[at] = random.int(256);
        return copy;
      });
      try {
        const verdict = verifySync(doc, trust);
        // Only a mutation that changed nothing (a byte set to its own value) may pass.
        if (verdict.ok) assert.deepEqual(doc, forged.doc, `case ${i} passed altered`);
      } catch (err) {
        assert.ok(err instanceof TpmJwtError, `case ${i}: ${String(err)}`);
      }
    }
  });
});
