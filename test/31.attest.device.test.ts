/**
 * Key attestation against a TPM manufactured with EK certificates (swtpm_setup and its
 * local CA): the device's attestKey and activateCredential, the server's verifier, and
 * each way a forged or altered attestation fails, with its reason; and a TPM without EK
 * certificates, which has nothing to attest with.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type JsonWebKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  activateCredential,
  attestKey,
  createActivationChallenge,
  TpmJwtError,
  verifyAttestation,
  type ActivationChallenge,
  type ActivationExpectation,
  type ActivationResponse,
  type AttestationDocument,
  type AttestationVerdict,
  type Tpm,
} from '../lib/index.js';
import { pem } from '../lib/encoding.js';
import { decodeKeyFile } from '../lib/tpm/key-file-reader.js';
import { makeCredential } from '../lib/wire/make-credential.js';
import { publicKeyOf } from '../lib/wire/public-key.js';
import { objectName, parsePublic } from '../lib/wire/tpm-structures.js';
import { assertFails, cli, spawnCli } from './helpers/cli.js';
import { manufacture } from './helpers/ek-ca.js';
import { useSwtpm } from './helpers/swtpm.js';
import { leftovers, tpm2 } from './helpers/tools.js';

import { failing, reason } from './helpers/verdict.js';

const EMAIL = 'device-7@p.iam.gserviceaccount.com';

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

describe('31 key attestation on a TPM with EK certificates', () => {
  const swtpm = useSwtpm({ ekCertificates: true });
  let tpm: Tpm;
  let dir: string;
  let keyFile: string;
  let keyPublicJwk: JsonWebKey;
  let doc: AttestationDocument;
  /** A valid activation of this TPM's AK, which any attestation by the same AK can reuse. */
  let activation: { expected: ActivationExpectation; response: ActivationResponse };
  let challenge: ActivationChallenge;

  const roots = () => swtpm.ekCa.root;
  const attest = (options: Partial<Parameters<typeof attestKey>[0]> = {}) =>
    attestKey({ tcti: swtpm.tcti, key: keyFile, email: EMAIL, ekChain: swtpm.ekCa.intermediate, ...options });
  const noneLeft = async () => assert.equal(await leftovers(swtpm.tcti, ['transient', 'loaded-session']), '');

  before(async () => {
    dir = swtpm.tempDir('attest');
    tpm = await swtpm.openTpm();
    const key = await tpm.createKey({ alg: 'ES256' });
    keyFile = path.join(dir, 'key.pem');
    writeFileSync(keyFile, key.toPem());
    keyPublicJwk = key.publicKey.export({ format: 'jwk' });
    doc = await attest();
    const made = await createActivationChallenge(doc, { roots: roots() });
    challenge = made.challenge;
    activation = { expected: made.expected, response: await activateCredential(challenge, { tcti: swtpm.tcti }) };
  });

  it('attests a fresh key: after credential activation the verifier passes every check', async () => {
    assert.deepEqual(
      doc.ek.certificates.map((c) => c.index),
      ['0x01c00002', '0x01c00016'],
      'the RSA and the ECC EK certificate from NV',
    );
    assert.equal(doc.notes, undefined, 'no NV index was skipped');
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

  it('sends the device a challenge without its answer, and checks the answer against what it kept', async () => {
    assert.equal(JSON.stringify(challenge).includes(activation.expected.secretDigest), false);
    assert.deepEqual(Object.keys(challenge).sort(), ['ak', 'credentialBlob', 'ek', 'encryptedSecret', 'format']);
    // Another challenge's expectation does not accept this answer.
    const other = await createActivationChallenge(doc, { roots: roots() });
    const verdict = await verifyAttestation(doc, {
      roots: roots(),
      activation: { expected: other.expected, response: activation.response },
    });
    assert.deepEqual(failing(verdict), ['ak-bound']);
    assert.match(reason(verdict, 'ak-bound'), /did not recover the challenge's secret/);
  });

  it('verifies where the addon cannot load, from the package root', () => {
    const input = path.join(dir, 'verifier-input.json');
    writeFileSync(input, JSON.stringify({ doc, roots: roots(), activation }));
    const lib = (file: string) => JSON.stringify(fileURLToPath(new URL(`../lib/${file}`, import.meta.url)));
    const script = `
      import { readFileSync } from 'node:fs';
      import { verifyAttestation } from ${lib('index.ts')};
      import { native } from ${lib('native.ts')};
      const { doc, roots, activation } = JSON.parse(readFileSync(${JSON.stringify(input)}, 'utf8'));
      const verdict = await verifyAttestation(doc, { roots, activation });
      let addon = 'loaded';
      try { native(); } catch (err) { addon = err.code; }
      console.log(JSON.stringify({ ok: verdict.ok, addon }));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TPM_JWT_ADDON: '/nonexistent/tpm_jwt.node' },
      encoding: 'utf8',
    });
    // The addon could not load in that process, and the verdict came all the same.
    assert.deepEqual(JSON.parse(result.stdout), { ok: true, addon: 'ERR_NATIVE_ADDON' }, result.stderr);
  });

  it('does not pass without proof that the AK is in the certified TPM', async () => {
    const verdict = await verifyAttestation(doc, { roots: roots() });
    assert.deepEqual(failing(verdict), ['ak-bound']);
    assert.match(reason(verdict, 'ak-bound'), /nothing ties the AK to the EK/);
    assert.deepEqual([verdict.ok, verdict.jwk, verdict.email], [false, undefined, undefined]);
  });

  it('activates with the ECC (P-384) EK as well: ECDH and KDFe', async () => {
    const made = await createActivationChallenge(doc, { roots: roots(), ek: 'ecc' });
    assert.equal(made.challenge.ek.index, '0x01c00016');
    const response = await activateCredential(made.challenge, { tcti: swtpm.tcti });
    const verdict = await verifyAttestation(doc, { roots: roots(), activation: { expected: made.expected, response } });
    assert.equal(verdict.ok, true);
  });

  it('attests with an ECC P-256 AK (ECDSA-SHA256), activated on its own', async () => {
    const withEcc = await attest({ akType: 'ecc' });
    assert.equal(parsePublic(Buffer.from(withEcc.ak.public, 'base64')).type, 0x0023);
    const made = await createActivationChallenge(withEcc, { roots: roots() });
    assert.equal(made.challenge.ak.type, 'ecc');
    const response = await activateCredential(made.challenge, { tcti: swtpm.tcti });
    const verdict = await verifyAttestation(withEcc, {
      roots: roots(),
      activation: { expected: made.expected, response },
    });
    assert.equal(verdict.ok, true);
    // The RSA AK's activation says nothing about this AK.
    assert.deepEqual(failing(await verifyAttestation(withEcc, { roots: roots(), activation })), ['ak-bound']);
  });

  it('attests a key with an auth value, and one bound to PCRs (Certify uses the key by its auth value)', async () => {
    const withAuth = path.join(dir, 'auth.pem');
    writeFileSync(withAuth, (await tpm.createKey({ alg: 'RS256', auth: 'key secret' })).toPem());
    const attested = await attest({ key: withAuth, auth: 'key secret' });
    assert.equal((await verifyAttestation(attested, { roots: roots(), activation })).ok, true);

    const pcrBound = path.join(dir, 'pcr.pem');
    writeFileSync(pcrBound, (await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [7] } })).toPem());
    assert.equal((await verifyAttestation(await attest({ key: pcrBound }), { roots: roots(), activation })).ok, true);
  });

  it('leaves no transient object behind after a failed Certify or a failed activation', async () => {
    const persisted = await tpm.createKey({ alg: 'ES256', auth: 'right', persist: 0x81000045 });
    swtpm.cleanup(() => tpm.evict(0x81000045).catch(() => undefined));
    assert.equal(persisted.handle, 0x81000045);
    await assert.rejects(attest({ key: 'handle:0x81000045', auth: 'wrong' }), { code: 'ERR_TPM_AUTH_FAIL' });
    await noneLeft();
    const withAuth = path.join(dir, 'auth-2.pem');
    writeFileSync(withAuth, (await tpm.createKey({ alg: 'ES256', auth: 'right' })).toPem());
    await assert.rejects(attest({ key: withAuth, auth: 'wrong' }), { code: 'ERR_TPM_AUTH_FAIL' });
    await noneLeft();
    // The TPM refuses a credential whose integrity HMAC does not hold, with the AK and EK loaded.
    const blob = Buffer.from(challenge.credentialBlob, 'base64');
    blob[5]! ^= 1;
    const tampered = { ...challenge, credentialBlob: blob.toString('base64') };
    await assert.rejects(activateCredential(tampered, { tcti: swtpm.tcti }), (err: TpmJwtError) => {
      assert.equal(err.command, 'Esys_ActivateCredential');
      return true;
    });
    await noneLeft();
  });

  it('reads the EK certificates tpm2_nvread reads, and swtpm_setup wrote', () => {
    const nvread = path.join(dir, 'ek.der');
    tpm2(swtpm.tcti, 'nvread', '0x01c00002', '-C', 'o', '-o', nvread);
    const fromTools = new X509Certificate(readFileSync(nvread));
    assert.equal(new X509Certificate(doc.ek.certificates[0]!.pem).fingerprint256, fromTools.fingerprint256);
  });

  it('skips NV indices it cannot read (unwritten, read-locked, policy-read), with a note', async () => {
    const indices = ['0x01c00100', '0x01c00101', '0x01c00102'];
    const policy = path.join(dir, 'policy.bin');
    writeFileSync(policy, randomBytes(32));
    const data = path.join(dir, 'nv.bin');
    writeFileSync(data, Buffer.from('not a certificate'));
    try {
      tpm2(swtpm.tcti, 'nvdefine', indices[0]!, '-C', 'o', '-s', '64', '-a', 'ownerread|ownerwrite|authread');
      tpm2(swtpm.tcti, 'nvdefine', indices[1]!, '-C', 'o', '-s', '64', '-a', 'ownerread|ownerwrite|read_stclear');
      tpm2(swtpm.tcti, 'nvwrite', indices[1]!, '-C', 'o', '-i', data);
      tpm2(swtpm.tcti, 'nvreadlock', indices[1]!, '-C', 'o');
      tpm2(swtpm.tcti, 'nvdefine', indices[2]!, '-C', 'o', '-s', '64', '-a', 'policyread|ownerwrite', '-L', policy);
      tpm2(swtpm.tcti, 'nvwrite', indices[2]!, '-C', 'o', '-i', data);
      const attested = await attest();
      assert.deepEqual(
        attested.notes?.map((note) => note.replace(/: .*/, '')),
        indices.map((index) => `NV ${index} skipped`),
      );
      assert.match(attested.notes![0]!, /never been written/);
      assert.match(attested.notes![1]!, /read-locked/);
      assert.match(attested.notes![2]!, /neither with its own nor the owner's auth/);
      assert.equal((await verifyAttestation(attested, { roots: roots(), activation })).ok, true);
    } finally {
      for (const index of indices) {
        try {
          tpm2(swtpm.tcti, 'nvundefine', index, '-C', 'o');
        } catch {
          // not defined: the test failed before it
        }
      }
    }
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
      forged.ek.certificates = [{ index: '0x01c00002', pem: pem('CERTIFICATE', other['ek-rsa2048.crt']!) }];
      // The certificate is genuine, so the verifier makes a challenge for it; this TPM
      // cannot answer it, whichever EK it is told to use.
      const made = await createActivationChallenge(forged, { roots: roots() });
      await assert.rejects(activateCredential(made.challenge, { tcti: swtpm.tcti }), { code: 'ERR_TPM_KEY_NOT_FOUND' });
      await assert.rejects(activateCredential(made.challenge, { tcti: swtpm.tcti, ekHandle: 0x81010001 }), {
        code: 'ERR_TPM_KEY_NOT_FOUND',
      });
      await noneLeft();
      // And an activation this TPM did answer, for its own EK, does not vouch for the other.
      const verdict = await verifyAttestation(forged, { roots: roots(), activation });
      assert.deepEqual(failing(verdict), ['ak-bound']);
      assert.match(reason(verdict, 'ak-bound'), /EK whose certificate in this attestation is not a trusted EK/);
    });

    it('EK certificates from a CA the verifier does not trust', async () => {
      const stranger = await (await tpm.createKey({ alg: 'ES256' })).certificate({ subject: 'not a TPM vendor' });
      const verdict = await verifyAttestation(doc, { roots: stranger, activation });
      assert.deepEqual(failing(verdict), ['ek-certificate', 'ak-bound']);
      assert.match(reason(verdict, 'ek-certificate'), /does not chain to a given root/);
      assert.match(reason(verdict, 'ek-certificate'), /intermediate CA, the device sends it .*ekChain/);
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
    assertFails(await cli([...verifier, '--challenge-out', file('challenge.json')]), 2, 'USAGE');
    const made = await cli([
      ...verifier,
      '--challenge-out',
      file('challenge.json'),
      '--expected-out',
      file('expected.json'),
    ]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(statSync(file('expected.json')).mode & 0o777, 0o600);
    assert.equal('secretDigest' in JSON.parse(readFileSync(file('challenge.json'), 'utf8')), false);
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
      '--expected',
      file('expected.json'),
      '--activation',
      file('activation.json'),
    ]);
    assert.equal(verified.code, 0, verified.stderr);
    const verdict = JSON.parse(verified.stdout) as AttestationVerdict;
    assert.equal(verdict.ok, true);
    assert.equal(verdict.reasons.length, 8);
    assert.equal(verdict.jwk!.kid, JSON.parse(readFileSync(file('attestation.json'), 'utf8')).kid);
    // The device's challenge is no expectation.
    assertFails(
      await cli([...verifier, '--expected', file('challenge.json'), '--activation', file('activation.json')]),
      1,
      'ERR_INVALID_ARGUMENT',
    );
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
    const made: ActivationChallenge = {
      ...challenge,
      ek: { index: 'template', publicKey: ek.export({ type: 'spki', format: 'der' }).toString('base64') },
      credentialBlob: credential.credentialBlob.toString('base64'),
      encryptedSecret: credential.encryptedSecret.toString('base64'),
    };
    const response = await activateCredential(made, { tcti: swtpm.tcti });
    assert.deepEqual(Buffer.from(response.secret, 'base64'), secret);
  });

  it('persists the AK at a chosen handle, reuses only that AK, replaces another object only with force', async () => {
    for (const handle of [0x81000040, 0x81000041, 0x81000042, 0x81000043]) {
      swtpm.cleanup(() => tpm.evict(handle).catch(() => undefined));
    }
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

    // An AK of the other type is not this AK.
    await attest({ akHandle: 0x81000042, akType: 'ecc' });
    await assert.rejects(attest({ akHandle: 0x81000042 }), { code: 'ERR_TPM_HANDLE_IN_USE' });

    // Nor is tpm2_createak's: the same template, but a child of the EK, not an endorsement primary.
    const ekContext = path.join(dir, 'ek-rsa.ctx');
    const akContext = path.join(dir, 'createak.ctx');
    // Without a resource manager tpm2-tools leave what they load: flush after each.
    tpm2(swtpm.tcti, 'createek', '-G', 'rsa', '-c', ekContext);
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'createak', '-C', ekContext, '-c', akContext, '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa');
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    tpm2(swtpm.tcti, 'evictcontrol', '-C', 'o', '-c', akContext, '0x81000043');
    tpm2(swtpm.tcti, 'flushcontext', '-t');
    const createak = path.join(dir, 'createak.pub');
    tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000043', '-o', createak);
    const template = ({ area, ecc, rsa, ...fields }: ReturnType<typeof parsePublic>) => ({
      ...fields,
      bits: rsa?.bits ?? ecc?.curve,
    });
    assert.deepEqual(
      template(parsePublic(readFileSync(createak))),
      template(parsePublic(Buffer.from(doc.ak.public, 'base64'))),
      "tpm2_createak's AK has the template's public area: only its parent tells it apart",
    );
    await assert.rejects(attest({ akHandle: 0x81000043 }), { code: 'ERR_TPM_HANDLE_IN_USE' });
    const replaced = await attest({ akHandle: 0x81000043, force: true });
    assert.equal(replaced.ak.public, doc.ak.public);
    assert.equal((await verifyAttestation(replaced, { roots: roots(), activation })).ok, true);
  });

  it('activates only with an AK that exists, at the handle the device chooses: never persists or evicts', async () => {
    const handles = async () => tpm.persistentHandles();
    const before = await handles();
    // The verifier's hint names an empty handle: the device uses its own choice, the template's AK.
    const hinted = { ...challenge, ak: { ...challenge.ak, handle: '0x81000050' } };
    const response = await activateCredential(hinted, { tcti: swtpm.tcti });
    assert.deepEqual(Buffer.from(response.secret, 'base64'), Buffer.from(activation.response.secret, 'base64'));
    await assert.rejects(activateCredential(hinted, { tcti: swtpm.tcti, akHandle: 0x81000051 }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(activateCredential(challenge, { tcti: swtpm.tcti, akHandle: 0x81000051 }), {
      code: 'ERR_TPM_KEY_NOT_FOUND',
    });
    // An object that is not the AK is used for nothing, and stays.
    await tpm.createKey({ alg: 'ES256', persist: 0x81000052 });
    swtpm.cleanup(() => tpm.evict(0x81000052).catch(() => undefined));
    await assert.rejects(activateCredential(challenge, { tcti: swtpm.tcti, akHandle: 0x81000052 }), {
      code: 'ERR_TPM_KEY_NOT_FOUND',
    });
    assert.deepEqual(
      await handles(),
      [...before, 0x81000052].sort((a, b) => a - b),
    );
    await assert.rejects(activateCredential(challenge, { tcti: swtpm.tcti, force: true } as never), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await noneLeft();
  });

  it('passes in one step with a platform AK certificate in NV (as GCE provides), under AK roots', async () => {
    const file = (name: string) => path.join(dir, name);
    const akKey = publicKeyOf(parsePublic(Buffer.from(doc.ak.public, 'base64')))!;
    writeFileSync(file('ak.pem'), akKey.export({ type: 'spki', format: 'pem' }));
    // The platform's own CA, apart from the EK vendor's, naming the device as the EK certificate does.
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    openssl(
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', file('ak-ca.key'), '-out', file('ak-ca.pem'), '-subj', '/CN=tpm-jwt test AK CA', '-days', '2'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
    );
    writeFileSync(file('ak.ext'), 'keyUsage=critical,digitalSignature\nextendedKeyUsage=2.23.133.8.3\n');
    const device = new X509Certificate(doc.ek.certificates[0]!.pem).subject.replace(/\n/g, '/');
    openssl(
      ...['x509', '-new', '-subj', `/${device}`, '-force_pubkey', file('ak.pem'), '-days', '2', '-outform', 'DER'],
      ...['-CA', file('ak-ca.pem'), '-CAkey', file('ak-ca.key'), '-extfile', file('ak.ext'), '-out', file('ak.der')],
    );
    const akRoots = readFileSync(file('ak-ca.pem'), 'utf8');
    const size = String(readFileSync(file('ak.der')).length + 16); // padded, as NV indices often are
    tpm2(swtpm.tcti, 'nvdefine', '0x01c10000', '-C', 'o', '-s', size, '-a', 'ownerread|ownerwrite|authread');
    swtpm.cleanup(() => tpm2(swtpm.tcti, 'nvundefine', '0x01c10000', '-C', 'o'));
    tpm2(swtpm.tcti, 'nvwrite', '0x01c10000', '-C', 'o', '-i', file('ak.der'));

    const withCertificate = await attest();
    assert.ok(withCertificate.ak.certificate);
    const verdict = await verifyAttestation(withCertificate, { roots: roots(), akRoots });
    assert.deepEqual(failing(verdict), []);
    assert.match(reason(verdict, 'ak-bound'), /AK certificate CN=unknown names this AK and chains to an AK root/);

    // The EK roots never vouch for an AK.
    const ekRootsOnly = await verifyAttestation(withCertificate, { roots: roots() });
    assert.deepEqual(failing(ekRootsOnly), ['ak-bound']);
    assert.match(reason(ekRootsOnly, 'ak-bound'), /not checked: no AK roots/);
    // Every piece of evidence given must hold: a failed activation fails it.
    const other = await createActivationChallenge(doc, { roots: roots() });
    const mixed = await verifyAttestation(withCertificate, {
      roots: roots(),
      akRoots,
      activation: { expected: other.expected, response: activation.response },
    });
    assert.deepEqual(failing(mixed), ['ak-bound']);
    assert.match(reason(mixed, 'ak-bound'), /did not recover/);

    // An EK certificate in the AK certificate's place proves nothing about this AK.
    const swapped = {
      ...withCertificate,
      ak: { ...withCertificate.ak, certificate: withCertificate.ek.certificates[0]!.pem },
    };
    const refused = await verifyAttestation(swapped, { roots: roots(), akRoots: roots() });
    assert.deepEqual(failing(refused), ['ak-bound']);
    assert.match(reason(refused, 'ak-bound'), /one of the EK certificates/);
  });

  it('refuses what is not an attestation, and bad arguments, with ERR_INVALID_ARGUMENT', async () => {
    await assert.rejects(verifyAttestation('{"format":"other"}', { roots: roots() }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(verifyAttestation({ ...doc, key: { public: '***' } }, { roots: roots() }), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(verifyAttestation(doc, { roots: 'no certificate here' }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(verifyAttestation(doc, { roots: roots(), akRoots: 'none' }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(attest({ nonce: 'xyz' }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(attest({ nonce: Buffer.alloc(65) }), { code: 'ERR_INVALID_ARGUMENT' });
    await assert.rejects(activateCredential('{}', { tcti: swtpm.tcti }), { code: 'ERR_INVALID_ARGUMENT' });
    assertFails(await cli(['attest', '--tcti', swtpm.tcti, '--key', keyFile, '--nonce', 'zz']), 2, 'USAGE');
  });
});

describe('31 key attestation on a TPM without EK certificates', () => {
  const swtpm = useSwtpm();

  it('refuses to attest: nothing vouches for the TPM', async () => {
    const tpm = await swtpm.openTpm();
    const key = path.join(swtpm.tempDir('no-ek'), 'key.pem');
    writeFileSync(key, (await tpm.createKey({ alg: 'ES256' })).toPem());
    await assert.rejects(attestKey({ tcti: swtpm.tcti, key }), (err: TpmJwtError) => {
      assert.equal(err.code, 'ERR_TPM_UNSUPPORTED');
      assert.match(err.message, /no readable EK certificate/);
      assert.match(
        err.message,
        /swtpm_setup --tpm2 --create-ek-cert/,
        'the next step is in the library, not only the CLI',
      );
      return true;
    });
  });
});
