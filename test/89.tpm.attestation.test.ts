/**
 * Key attestation against a TPM manufactured with EK certificates (swtpm_setup and its
 * local CA): the device's attestKey and activateCredential, the server's verifier, and
 * each way a forged or altered attestation fails, with its reason.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type JsonWebKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  activateCredential,
  attestKey,
  createActivationChallenge,
  verifyAttestation,
  type ActivationChallenge,
  type ActivationResponse,
  type AttestationDocument,
  type AttestationVerdict,
  type Tpm,
} from '../lib/index.js';
import { makeCredential } from '../lib/attest/make-credential.js';
import { objectName, parsePublic } from '../lib/attest/tpm-structures.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { publicKeyOf } from '../lib/tpm/public-key.js';
import { toPem } from '../lib/tpm/attest-nv.js';
import { assertFails, cli, spawnCli } from './helpers/cli.js';
import { manufacture } from './helpers/ek-ca.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

const EMAIL = 'device-7@p.iam.gserviceaccount.com';

/** The checks of a verdict that failed, in order. */
const failing = (verdict: AttestationVerdict) => verdict.reasons.filter((r) => !r.ok).map((r) => r.check);
const reason = (verdict: AttestationVerdict, check: string) => verdict.reasons.find((r) => r.check === check)!.detail;

/** A copy of the document with one base64 field's byte at `at` (negative: from the end) xor'ed with `mask`. */
function flip(
  doc: AttestationDocument,
  field: (d: AttestationDocument) => { get: string; set(v: string): void },
  at: number,
  mask = 0x01,
) {
  const copy = structuredClone(doc);
  const f = field(copy);
  const bytes = Buffer.from(f.get, 'base64');
  bytes[at < 0 ? bytes.length + at : at]! ^= mask;
  f.set(bytes.toString('base64'));
  return copy;
}

const akName = (doc: AttestationDocument) => objectName(parsePublic(Buffer.from(doc.ak.public, 'base64')));

describe('89 key attestation', () => {
  const swtpm = useSwtpm({ ekCertificates: true });
  let tpm: Tpm;
  let dir: string;
  let keyFile: string;
  let keyPublicJwk: JsonWebKey;
  let doc: AttestationDocument;
  /** A valid activation of this TPM's AK, which any attestation by the same AK can reuse. */
  let activation: { challenge: ActivationChallenge; response: ActivationResponse };

  const roots = () => swtpm.ekCa.root;
  const attest = (options: Partial<Parameters<typeof attestKey>[0]> = {}) =>
    attestKey({ tcti: swtpm.tcti, key: keyFile, email: EMAIL, ekChain: swtpm.ekCa.intermediate, ...options });

  before(async () => {
    dir = swtpm.tempDir('attest');
    tpm = await swtpm.openTpm();
    const key = await tpm.createKey({ alg: 'ES256' });
    keyFile = path.join(dir, 'key.pem');
    writeFileSync(keyFile, key.toPem());
    keyPublicJwk = key.publicKey.export({ format: 'jwk' });
    doc = await attest();
    const challenge = await createActivationChallenge(doc, { roots: roots() });
    activation = { challenge, response: await activateCredential(challenge, { tcti: swtpm.tcti }) };
  });

  it('attests a fresh key: after credential activation the verifier passes every check', async () => {
    assert.deepEqual(
      doc.ek.certificates.map((c) => c.index),
      ['0x01c00002', '0x01c00016'],
      'the RSA and the ECC EK certificate from NV',
    );
    const verdict = await verifyAttestation(doc, { roots: roots(), activation });
    assert.deepEqual(failing(verdict), [], JSON.stringify(verdict.reasons, null, 1));
    assert.equal(verdict.ok, true);
    assert.match(
      reason(verdict, 'ek-certificate'),
      /RSA 2048 EK certificate \(NV 0x01c00002\).*chains to CN=swtpm-localca-rootca/,
    );
    assert.match(reason(verdict, 'ak-bound'), /credential activation/);
    const { kid, alg, use, ...jwk } = verdict.jwk!;
    assert.deepEqual(jwk, keyPublicJwk, "the JWK is the TPM key's");
    assert.deepEqual([kid, alg, use, verdict.email], [doc.kid, 'ES256', 'sig', EMAIL]);
  });

  it('verifies where no TPM and no addon are, from the package root', () => {
    const input = path.join(dir, 'verifier-input.json');
    writeFileSync(input, JSON.stringify({ doc, roots: roots(), activation }));
    const script = `
      import { readFileSync } from 'node:fs';
      import { createRequire } from 'node:module';
      import { verifyAttestation } from ${JSON.stringify(fileURLToPath(new URL('../lib/index.ts', import.meta.url)))};
      const { doc, roots, activation } = JSON.parse(readFileSync(${JSON.stringify(input)}, 'utf8'));
      const verdict = await verifyAttestation(doc, { roots, activation });
      const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
      console.log(JSON.stringify({ ok: verdict.ok, addon: loaded.filter((f) => f.endsWith('.node')).length }));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TPM_JWT_ADDON: '/nonexistent/tpm_jwt.node' },
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(result.stdout), { ok: true, addon: 0 }, result.stderr);
  });

  it('does not pass without proof that the AK is in the certified TPM', async () => {
    const verdict = await verifyAttestation(doc, { roots: roots() });
    assert.deepEqual(failing(verdict), ['ak-bound']);
    assert.match(reason(verdict, 'ak-bound'), /nothing ties the AK to the EK/);
    assert.equal(verdict.ok, false);
  });

  it('activates with the ECC (P-384) EK as well: ECDH and KDFe', async () => {
    const challenge = await createActivationChallenge(doc, { roots: roots(), ek: 'ecc' });
    assert.equal(challenge.ek.index, '0x01c00016');
    const response = await activateCredential(challenge, { tcti: swtpm.tcti });
    assert.equal((await verifyAttestation(doc, { roots: roots(), activation: { challenge, response } })).ok, true);
  });

  it('attests with an ECC P-256 AK (ECDSA-SHA256), activated on its own', async () => {
    const withEcc = await attest({ akType: 'ecc' });
    assert.equal(parsePublic(Buffer.from(withEcc.ak.public, 'base64')).type, 0x0023);
    const challenge = await createActivationChallenge(withEcc, { roots: roots() });
    assert.equal(challenge.ak.type, 'ecc');
    const response = await activateCredential(challenge, { tcti: swtpm.tcti });
    assert.equal((await verifyAttestation(withEcc, { roots: roots(), activation: { challenge, response } })).ok, true);
    // The RSA AK's activation says nothing about this AK.
    assert.deepEqual(failing(await verifyAttestation(withEcc, { roots: roots(), activation })), ['ak-bound']);
  });

  it('attests a key with an auth value, and one bound to PCRs (Certify uses the key by its auth value)', async () => {
    const withAuth = path.join(dir, 'auth.pem');
    writeFileSync(withAuth, (await tpm.createKey({ alg: 'RS256', auth: 'key secret' })).toPem());
    const attested = await attest({ key: withAuth, auth: 'key secret' });
    assert.equal((await verifyAttestation(attested, { roots: roots(), activation })).ok, true);
    await assert.rejects(attest({ key: withAuth, auth: 'wrong' }), { code: 'ERR_TPM_AUTH_FAIL' });

    const pcrBound = path.join(dir, 'pcr.pem');
    writeFileSync(pcrBound, (await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [7] } })).toPem());
    assert.equal((await verifyAttestation(await attest({ key: pcrBound }), { roots: roots(), activation })).ok, true);
  });

  it('reads the EK certificates tpm2_nvread reads, and swtpm_setup wrote', () => {
    const nvread = path.join(dir, 'ek.der');
    tpm2(swtpm.tcti, 'nvread', '0x01c00002', '-C', 'o', '-o', nvread);
    const fromTools = new X509Certificate(readFileSync(nvread));
    assert.equal(new X509Certificate(doc.ek.certificates[0]!.pem).fingerprint256, fromTools.fingerprint256);
  });

  describe('fails each altered or forged attestation with its reason', () => {
    /** What is altered, how, the checks that fail, and why the telling one fails. */
    const cases: [string, () => AttestationDocument | Promise<AttestationDocument>, string[], [string, RegExp]][] = [
      [
        'the certify info',
        () => flip(doc, (d) => ({ get: d.certify.attest, set: (v) => (d.certify.attest = v) }), -1),
        ['certify-signature'],
        ['certify-signature', /does not verify/],
      ],
      [
        'the signature',
        () => flip(doc, (d) => ({ get: d.certify.signature, set: (v) => (d.certify.signature = v) }), -1),
        ['certify-signature'],
        ['certify-signature', /does not verify/],
      ],
      [
        // restricted is bit 16 of objectAttributes, which follow the size, type and nameAlg
        'the AK public area (restricted cleared)',
        () => flip(doc, (d) => ({ get: d.ak.public, set: (v) => (d.ak.public = v) }), 7, 0x01),
        ['ak-bound', 'ak-attributes', 'certify-info'],
        ['ak-attributes', /not restricted/],
      ],
      [
        "the key's public area (another key's)",
        async () => {
          const other = await tpm.createKey({ alg: 'ES256' });
          const copy = structuredClone(doc);
          copy.key.public = Buffer.from(decodeKeyFile(other.toPem()).public).toString('base64');
          return copy;
        },
        ['certified-name'],
        ['certified-name', /is not the Name/],
      ],
    ];
    for (const [what, make, expected, [check, why]] of cases) {
      it(what, async () => {
        const verdict = await verifyAttestation(await make(), { roots: roots(), activation });
        assert.deepEqual(failing(verdict), expected);
        assert.match(reason(verdict, check), why);
        assert.equal(verdict.ok, false);
      });
    }

    it("another TPM's EK certificate (from the same CA)", async () => {
      const other = manufacture(path.join(dir, 'other-tpm'), swtpm.ekCa.dir);
      const forged = structuredClone(doc);
      forged.ek.certificates = [{ index: '0x01c00002', pem: toPem(other['ek-rsa2048.crt']!) }];
      // The certificate is genuine, so the verifier makes a challenge for it; this TPM
      // cannot answer it, whichever EK it is told to use.
      const challenge = await createActivationChallenge(forged, { roots: roots() });
      await assert.rejects(activateCredential(challenge, { tcti: swtpm.tcti }), { code: 'ERR_TPM_KEY_NOT_FOUND' });
      await assert.rejects(activateCredential(challenge, { tcti: swtpm.tcti, ekHandle: 0x81010001 }), {
        code: 'ERR_TPM_KEY_NOT_FOUND',
      });
      // And an activation this TPM did answer, for its own EK, does not vouch for the other.
      const verdict = await verifyAttestation(forged, { roots: roots(), activation });
      assert.deepEqual(failing(verdict), ['ak-bound']);
      assert.match(reason(verdict, 'ak-bound'), /EK whose certificate in this attestation does not chain/);
    });

    it('EK certificates from a CA the verifier does not trust', async () => {
      const stranger = await (await tpm.createKey({ alg: 'ES256' })).certificate({ subject: 'not a TPM vendor' });
      const verdict = await verifyAttestation(doc, { roots: stranger, activation });
      assert.deepEqual(failing(verdict), ['ek-certificate', 'ak-bound']);
      assert.match(reason(verdict, 'ek-certificate'), /does not chain to a given root/);
    });

    it('a wrong nonce (and a replay without one)', async () => {
      const nonce = randomBytes(32);
      const fresh = await attest({ nonce });
      assert.equal((await verifyAttestation(fresh, { roots: roots(), nonce, activation })).ok, true);
      const wrong = await verifyAttestation(fresh, { roots: roots(), nonce: randomBytes(32), activation });
      assert.deepEqual(failing(wrong), ['qualifying-data']);
      assert.match(reason(wrong, 'qualifying-data'), /does not carry the nonce/);
      const replayed = await verifyAttestation(doc, { roots: roots(), nonce, activation });
      assert.deepEqual(failing(replayed), ['qualifying-data']);
      // Without a nonce the AK vouches for the kid and email: another email is refused.
      const renamed = await verifyAttestation(
        { ...doc, email: 'intruder@p.iam.gserviceaccount.com' },
        { roots: roots(), activation },
      );
      assert.deepEqual(failing(renamed), ['qualifying-data']);
      assert.equal(renamed.email, undefined);
    });

    it('an imported key (not sensitiveDataOrigin)', async () => {
      const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      });
      const imported = await tpm.importKey(pem.toString());
      const file = path.join(dir, 'imported.pem');
      writeFileSync(file, imported.toPem());
      const verdict = await verifyAttestation(await attest({ key: file }), { roots: roots(), activation });
      assert.deepEqual(failing(verdict), ['key-attributes']);
      assert.match(reason(verdict, 'key-attributes'), /not sensitiveDataOrigin.*imported/);
    });
  });

  it('runs the activation round trip between two processes, through the CLI', async () => {
    const file = (name: string) => path.join(dir, name);
    const device = await spawnCli([
      'attest',
      '--tcti',
      swtpm.tcti,
      '--key',
      keyFile,
      '--email',
      EMAIL,
      '--ek-chain',
      swtpm.ekCa.intermediateFile,
      '--out',
      file('attestation.json'),
    ]);
    assert.equal(device.code, 0, device.stderr);
    const verifier = ['verify-attestation', file('attestation.json'), '--ca', swtpm.ekCa.rootFile];
    assertFails(await cli(verifier), 1, 'ERR_INVALID_ARGUMENT');
    assert.equal((await cli([...verifier, '--challenge-out', file('challenge.json')])).code, 0);
    const answer = await spawnCli([
      'attest',
      '--tcti',
      swtpm.tcti,
      '--activate',
      file('challenge.json'),
      '--out',
      file('activation.json'),
    ]);
    assert.equal(answer.code, 0, answer.stderr);
    const verified = await cli([
      ...verifier,
      '--challenge',
      file('challenge.json'),
      '--activation',
      file('activation.json'),
    ]);
    assert.equal(verified.code, 0, verified.stderr);
    const verdict = JSON.parse(verified.stdout) as AttestationVerdict;
    assert.equal(verdict.ok, true);
    assert.equal(verdict.reasons.length, 8);
    assert.equal(verdict.jwk!.kid, JSON.parse(readFileSync(file('attestation.json'), 'utf8')).kid);
  });

  it('recovers the secret of a tpm2_makecredential credential (interop)', async () => {
    const ekPem = path.join(dir, 'ek-rsa.pem');
    writeFileSync(
      ekPem,
      new X509Certificate(doc.ek.certificates[0]!.pem).publicKey.export({ type: 'spki', format: 'pem' }),
    );
    const secret = randomBytes(32);
    writeFileSync(path.join(dir, 'secret.bin'), secret);
    const credential = path.join(dir, 'credential.bin');
    tpm2(
      swtpm.tcti,
      'makecredential',
      '-T',
      'none',
      '-u',
      ekPem,
      '-G',
      'rsa',
      '-s',
      path.join(dir, 'secret.bin'),
      '-n',
      akName(doc).toString('hex'),
      '-o',
      credential,
    );
    // The file names no EK: the device makes it from the TCG template L-1, which must be
    // the certified key for the TPM to decrypt the seed.
    const result = await cli(['attest', '--tcti', swtpm.tcti, '--activate', credential]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(Buffer.from(JSON.parse(result.stdout).secret, 'base64'), secret);
  });

  it('activates with an ECC P-256 EK from the TCG template L-2, as tpm2_createek makes it', async () => {
    const context = path.join(dir, 'ek-ecc.ctx');
    const ekFile = path.join(dir, 'ek-ecc.pem');
    tpm2(swtpm.tcti, 'createek', '-G', 'ecc', '-c', context, '-u', ekFile, '-f', 'pem');
    tpm2(swtpm.tcti, 'flushcontext', '-t'); // tpm2-tools' context file holds an ESYS_TR only it reads
    const ek = createPublicKey(readFileSync(ekFile));
    const secret = randomBytes(32);
    const credential = makeCredential(ek, akName(doc), secret);
    const challenge: ActivationChallenge = {
      ...activation.challenge,
      ek: { index: 'template', publicKey: ek.export({ type: 'spki', format: 'der' }).toString('base64') },
      credentialBlob: credential.credentialBlob.toString('base64'),
      encryptedSecret: credential.encryptedSecret.toString('base64'),
    };
    const response = await activateCredential(challenge, { tcti: swtpm.tcti });
    assert.deepEqual(Buffer.from(response.secret, 'base64'), secret);
  });

  it('persists the AK at a chosen handle, reuses it, and replaces another object only with force', async () => {
    swtpm.cleanup(() => tpm.evict(0x81000040).catch(() => undefined));
    swtpm.cleanup(() => tpm.evict(0x81000041).catch(() => undefined));
    const first = await attest({ akHandle: 0x81000040 });
    assert.equal(first.ak.handle, '0x81000040');
    assert.equal(first.ak.public, doc.ak.public, 'the same AK: a primary from the same template');
    assert.match(tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000040'), /restricted\|sign/);
    assert.equal((await attest({ akHandle: 0x81000040 })).ak.public, first.ak.public);

    await tpm.createKey({ alg: 'ES256', persist: 0x81000041 });
    await assert.rejects(attest({ akHandle: 0x81000041 }), { code: 'ERR_TPM_HANDLE_IN_USE' });
    const forced = await attest({ akHandle: 0x81000041, force: true });
    assert.equal(forced.ak.public, doc.ak.public);
    assert.match(tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000041'), /restricted\|sign/);
  });

  it('passes in one step with a platform AK certificate in NV (as GCE provides)', async () => {
    const akPem = path.join(dir, 'ak.pem');
    const akKey = publicKeyOf(parsePublic(Buffer.from(doc.ak.public, 'base64')))!;
    writeFileSync(akPem, akKey.export({ type: 'spki', format: 'pem' }));
    const certificate = path.join(dir, 'ak.der');
    execFileSync(
      'openssl',
      [
        'x509',
        '-new',
        '-subj',
        '/CN=tpm-jwt test AK',
        '-force_pubkey',
        akPem,
        '-days',
        '2',
        '-outform',
        'DER',
        '-CA',
        swtpm.ekCa.intermediateFile,
        '-CAkey',
        swtpm.ekCa.intermediateKeyFile,
        '-out',
        certificate,
      ],
      { stdio: 'ignore' },
    );
    const size = String(readFileSync(certificate).length + 16); // padded, as NV indices often are
    tpm2(swtpm.tcti, 'nvdefine', '0x01c10000', '-C', 'o', '-s', size, '-a', 'ownerread|ownerwrite|authread');
    swtpm.cleanup(() => tpm2(swtpm.tcti, 'nvundefine', '0x01c10000', '-C', 'o'));
    tpm2(swtpm.tcti, 'nvwrite', '0x01c10000', '-C', 'o', '-i', certificate);

    const withCertificate = await attest();
    assert.ok(withCertificate.ak.certificate);
    const verdict = await verifyAttestation(withCertificate, { roots: roots() });
    assert.deepEqual(failing(verdict), []);
    assert.match(reason(verdict, 'ak-bound'), /AK certificate CN=tpm-jwt test AK names this AK/);

    // An AK certificate for another key (here: the EK's) proves nothing about this AK.
    const swapped = {
      ...withCertificate,
      ak: { ...withCertificate.ak, certificate: withCertificate.ek.certificates[0]!.pem },
    };
    const refused = await verifyAttestation(swapped, { roots: roots() });
    assert.deepEqual(failing(refused), ['ak-bound']);
    assert.match(reason(refused, 'ak-bound'), /for another key/);
  });

  it('refuses what is not an attestation, and bad arguments, with ERR_INVALID_ARGUMENT', async () => {
    await assert.rejects(verifyAttestation('{"format":"other"}', { roots: roots() }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(verifyAttestation({ ...doc, key: { public: '***' } }, { roots: roots() }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(verifyAttestation(doc, { roots: 'no certificate here' }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(attest({ nonce: 'xyz' }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(attest({ nonce: Buffer.alloc(65) }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(activateCredential('{}', { tcti: swtpm.tcti }), { code: 'ERR_INVALID_ARGUMENT' });
    assertFails(await cli(['attest', '--tcti', swtpm.tcti, '--key', keyFile, '--nonce', 'zz']), 2, 'USAGE');
  });
});
