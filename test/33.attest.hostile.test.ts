/**
 * The verifier on documents anyone can send a fleet's enrollment server: chains built to
 * make the path search explode, PEM text built to make the scanner rescan, chains that
 * openssl refuses, and keys too weak to vouch for anything. Work is counted (signature
 * checks), not timed; openssl is the outside reference for the chain rules.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { TpmJwtError, type AttestationDocument } from '../lib/index.js';
import { createActivationChallenge } from '../lib/attest/challenge.js';
import { MAX_SIGNATURE_CHECKS } from '../lib/attest/certificates.js';
import { MAX_DOCUMENT_CERTIFICATES } from '../lib/attest/document.js';
import { verifyAttestation } from '../lib/attest/verify.js';
import { certificatePems, MAX_DOCUMENT_SIZE } from '../lib/wire/attestation-format.js';
import { ATTR, CA, forgeAttestation, issueCertificate } from './helpers/forged-attestation.js';
import { countSignatureChecks } from './helpers/signature-checks.js';
import { failing, reason } from './helpers/verdict.js';

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const EK = { eku: ['2.23.133.8.1'], keyUsage: 0x0008 /* keyAgreement */, tpmManufacturer: true };

/** The forged document with its EK certificate and chain replaced. */
function withEkChain(doc: AttestationDocument, ekPem: string, chain: string[]): AttestationDocument {
  return { ...doc, ek: { certificates: [{ index: '0x01c0000a', pem: ekPem }], chain } };
}

describe('33 attestation: hostile documents', () => {
  const forged = forgeAttestation();
  const trust = { roots: forged.roots, akRoots: forged.akRoots };

  describe('the chain search', () => {
    it('decides fourteen same-named CAs with a bounded number of signature checks', () => {
      const root = ec();
      const rootPem = issueCertificate(root.publicKey, 'X', root.privateKey, { ...CA, subject: 'X' });
      // Fourteen self-signed CAs all named X (with the EK and AK certificates, the most a
      // document may carry), none the one that signed the leaf: each is a candidate issuer
      // of every other, and the path search used to try every ordering of them.
      const impostors = Array.from({ length: 14 }, () => {
        const key = ec();
        return issueCertificate(key.publicKey, 'X', key.privateKey, { ...CA, subject: 'X' });
      });
      const leafPem = issueCertificate(ec().publicKey, 'X', ec().privateKey, { ...EK, subject: 'device' });
      const doc = withEkChain(forged.doc, leafPem, impostors);
      const { result, checks } = countSignatureChecks(() => verifyAttestation(doc, { roots: rootPem }));
      assert.ok(checks <= MAX_SIGNATURE_CHECKS + 4, `${checks} signature checks`);
      assert.ok(failing(result).includes('ek-certificate'));
      assert.match(reason(result, 'ek-certificate'), /more than 64 signature checks|does not chain/);
    });

    it('takes a CA repeated many times as one, and still finds the chain', () => {
      const intermediate = forged.doc.ek.chain[0]!;
      const doc = withEkChain(forged.doc, forged.doc.ek.certificates[0]!.pem, Array(14).fill(intermediate));
      const { result, checks } = countSignatureChecks(() => verifyAttestation(doc, trust));
      assert.deepEqual(failing(result), []);
      assert.ok(checks <= 8, `${checks} signature checks`);
    });

    it('refuses a path longer than it allows, and one through a CA whose path length constraint forbids it', () => {
      const root = ec();
      const rootPem = issueCertificate(root.publicKey, 'root', root.privateKey, { ...CA, subject: 'root' });
      const i1 = ec();
      const i2 = ec();
      const i1Pem = issueCertificate(i1.publicKey, 'root', root.privateKey, { ...CA, subject: 'I1', pathLen: 0 });
      const i2Pem = issueCertificate(i2.publicKey, 'I1', i1.privateKey, { ...CA, subject: 'I2' });
      const ekPem = issueCertificate(ec().publicKey, 'I2', i2.privateKey, { ...EK, subject: 'device' });
      const verdict = verifyAttestation(withEkChain(forged.doc, ekPem, [i1Pem, i2Pem]), { roots: rootPem });
      assert.match(reason(verdict, 'ek-certificate'), /CN=I1: its path length constraint \(0\) allows fewer/);
      assert.equal(openssl(rootPem, [i1Pem, i2Pem], ekPem).ok, false);

      // The same chain with I1 allowing one intermediate below it passes, as openssl agrees.
      const i1Open = issueCertificate(i1.publicKey, 'root', root.privateKey, { ...CA, subject: 'I1', pathLen: 1 });
      const passing = verifyAttestation(withEkChain(forged.doc, ekPem, [i1Open, i2Pem]), { roots: rootPem });
      assert.equal(
        reason(passing, 'ek-certificate').includes('chains to CN=root'),
        true,
        reason(passing, 'ek-certificate'),
      );
      assert.equal(openssl(rootPem, [i1Open, i2Pem], ekPem).ok, true);
    });

    it('refuses a certificate with a critical extension it does not understand, anywhere on the path', () => {
      const unknown = '1.3.6.1.4.1.99999.1';
      const ek = forgeAttestation({ ekCertificate: { criticalExtension: unknown } });
      const verdict = verifyAttestation(ek.doc, { roots: ek.roots, akRoots: ek.akRoots });
      assert.deepEqual(failing(verdict), ['ek-certificate', 'ak-bound']);
      assert.match(
        reason(verdict, 'ek-certificate'),
        /critical extensions not understood here \(1\.3\.6\.1\.4\.1\.99999\.1\)/,
      );
      const { ok, output } = openssl(ek.roots, ek.doc.ek.chain, ek.doc.ek.certificates[0]!.pem);
      assert.equal(ok, false);
      assert.match(output, /unhandled critical extension/);

      const intermediate = forgeAttestation({ ekIntermediate: { criticalExtension: unknown } });
      const through = verifyAttestation(intermediate.doc, { roots: intermediate.roots });
      assert.match(
        reason(through, 'ek-certificate'),
        /intermediate CN=forged EK intermediate: it has critical extensions/,
      );
      // The untouched forgery passes openssl too: the refusals above are the extensions'.
      assert.equal(openssl(forged.roots, forged.doc.ek.chain, forged.doc.ek.certificates[0]!.pem).ok, true);
    });
  });

  describe('sizes', () => {
    it('scans PEM in one pass: megabytes of unmatched markers hold no certificate, and hide none', () => {
      // A lazy regex rescanned the rest of the text at every marker: quadratic, minutes here.
      const begins = '-----BEGIN CERTIFICATE-----\n'.repeat(75_000);
      const ends = '-----END CERTIFICATE-----\n'.repeat(75_000);
      assert.deepEqual(certificatePems(begins), []);
      assert.deepEqual(certificatePems(ends), []);
      const one = forged.doc.ek.chain[0]!.trim();
      assert.deepEqual(certificatePems(`${begins}${one}\n${ends}${one}`), [one, one]);
    });

    it(`refuses a document over ${MAX_DOCUMENT_SIZE / 1024} KB, as text or as an object, before reading it`, () => {
      const big = { ...forged.doc, notes: ['x'.repeat(MAX_DOCUMENT_SIZE)] };
      for (const doc of [big, JSON.stringify(big)]) {
        assert.throws(() => verifyAttestation(doc, trust), {
          code: 'ERR_INVALID_ARGUMENT',
          message: /more than the 262144/,
        });
        assert.throws(() => createActivationChallenge(doc, { roots: forged.roots }), { code: 'ERR_INVALID_ARGUMENT' });
      }
    });

    it(`refuses a document with more than ${MAX_DOCUMENT_CERTIFICATES} certificates`, () => {
      const chain = Array(MAX_DOCUMENT_CERTIFICATES).fill(forged.doc.ek.chain[0]!);
      const doc = withEkChain(forged.doc, forged.doc.ek.certificates[0]!.pem, chain);
      assert.throws(() => verifyAttestation(doc, trust), {
        code: 'ERR_INVALID_ARGUMENT',
        message: /carries 18 certificates, more than 16/,
      });
      // One PEM field may hold many certificates: they count one by one.
      const packed = withEkChain(forged.doc, forged.doc.ek.certificates[0]!.pem, [chain.join('\n')]);
      assert.throws(() => verifyAttestation(packed, trust), { code: 'ERR_INVALID_ARGUMENT' });
    });
  });

  describe('key strength', () => {
    it('refuses a certified RSA-1024 key, and an RSA key whose keyBits is not its modulus', () => {
      const weak = forgeAttestation({ rsaKey: { bits: 1024 } });
      const verdict = verifyAttestation(weak.doc, { roots: weak.roots, akRoots: weak.akRoots });
      assert.deepEqual(failing(verdict), ['key-attributes']);
      assert.match(reason(verdict, 'key-attributes'), /it is RSA-1024, weaker than RSA-2048/);
      assert.equal(verdict.jwk, undefined);

      const lying = forgeAttestation({ rsaKey: { bits: 1024, keyBits: 2048 } });
      const lied = verifyAttestation(lying.doc, { roots: lying.roots, akRoots: lying.akRoots });
      assert.match(reason(lied, 'key-attributes'), /its keyBits \(2048\) is not its modulus's length \(1024 bits\)/);

      const strong = forgeAttestation({ rsaKey: { bits: 2048 } });
      const passed = verifyAttestation(strong.doc, { roots: strong.roots, akRoots: strong.akRoots });
      assert.deepEqual(failing(passed), []);
      assert.equal(passed.jwk?.kty, 'RSA');
    });

    it('refuses an AK that was not made inside the TPM (sensitiveDataOrigin clear)', () => {
      const akAttributes = ATTR.restricted | ATTR.sign | ATTR.fixedTPM | ATTR.fixedParent | ATTR.userWithAuth;
      const imported = forgeAttestation({ akAttributes });
      const verdict = verifyAttestation(imported.doc, { roots: imported.roots, akRoots: imported.akRoots });
      assert.deepEqual(failing(verdict), ['ak-attributes']);
      assert.match(reason(verdict, 'ak-attributes'), /not sensitiveDataOrigin/);
    });
  });

  it('throws nothing but TpmJwtError for any of the above', () => {
    for (const run of [
      () => verifyAttestation('{"format":"tpm-jwt-attestation/1"}', trust),
      () => verifyAttestation('x'.repeat(MAX_DOCUMENT_SIZE + 1), trust),
    ]) {
      assert.throws(run, (err: unknown) => err instanceof TpmJwtError && err.code === 'ERR_INVALID_ARGUMENT');
    }
  });
});

/** `openssl verify` of `leaf` under `root` with `chain` as untrusted intermediates. */
function openssl(root: string, chain: string[], leaf: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-openssl-'));
  try {
    const file = (name: string, text: string) => {
      writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    // The leaf is an EK certificate, not a TLS one: any purpose is fine for the chain rules.
    const args = ['verify', '-CAfile', file('root.pem', root)];
    if (chain.length > 0) args.push('-untrusted', file('chain.pem', chain.join('\n')));
    args.push(file('leaf.pem', leaf));
    const run = spawnSync('openssl', args, { encoding: 'utf8' });
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
