import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { jwtVerify } from 'jose';

import { jwt, Tpm, TpmSigner } from '../lib/index.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { tpm2 } from './helpers/tools.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const AUD = 'https://storage.googleapis.com/';

/** Every private component of a key, to look for in what the TPM gave back. */
function secretsOf(key: KeyObject): Buffer[] {
  const jwk = key.export({ format: 'jwk' });
  return ['d', 'p', 'q', 'dp', 'dq', 'qi']
    .filter((name) => jwk[name] !== undefined)
    .map((name) => Buffer.from(jwk[name] as string, 'base64url'));
}

function assertHoldsNoSecret(haystack: Buffer, key: KeyObject, what: string): void {
  for (const secret of secretsOf(key)) {
    // Any 16-byte run of a private component would be a leak.
    for (let i = 0; i + 16 <= secret.length; i += 8) {
      assert.equal(haystack.indexOf(secret.subarray(i, i + 16)), -1, `${what} holds private key material`);
    }
  }
}

describe('26 importing a service-account key', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    dir = swtpm.tempDir('import');
    tpm = await swtpm.openTpm();
  });

  for (const [name, make] of [
    ['RSA 2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['RSA 3072', () => generateKeyPairSync('rsa', { modulusLength: 3072 })],
    ['EC P-256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ] as const) {
    it(`imports an ${name} key; its TPM tokens verify with the ORIGINAL public key`, async () => {
      const { privateKey, publicKey } = make();
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const key = await tpm.importKey({ private_key: pem, private_key_id: 'kid' });
      assert.ok(key.publicKey.equals(publicKey));
      // What the TPM made the key: no fixedTPM/fixedParent (it did not generate it).
      assert.equal(key.attributes.fixedTPM, false);
      assert.equal(key.attributes.sensitiveDataOrigin, false);
      assert.equal(key.attributes.sign, true);

      const signer = TpmSigner.fromKey(key, { keyId: 'kid' });
      const now = Math.floor(Date.now() / 1000);
      const token = await jwt.encode(signer, { iss: EMAIL, sub: EMAIL, aud: AUD, iat: now, exp: now + 600 });
      assert.equal((await jwtVerify(token, publicKey, { audience: AUD })).payload.sub, EMAIL);

      const keyFile = Buffer.from(key.toPem());
      assertHoldsNoSecret(keyFile, privateKey, 'the key file');
      assertHoldsNoSecret(
        Buffer.from(keyFile.toString().split('\n').slice(1, -2).join(''), 'base64'),
        privateKey,
        'the key file DER',
      );
    });
  }

  it('imports PKCS#1 and SEC1 PEM as well as PKCS#8', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pkcs1 = await tpm.importKey(rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
    assert.ok(pkcs1.publicKey.equals(rsa.publicKey));
    const sec1 = await tpm.importKey(ec.privateKey.export({ type: 'sec1', format: 'pem' }).toString());
    assert.ok(sec1.publicKey.equals(ec.publicKey));
  });

  it('persists an imported key that cannot be duplicated out of the TPM', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await tpm.importKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { persist: 0x81000070 });
    swtpm.cleanup(() => tpm.evict(0x81000070));
    assert.ok((await tpm.loadKey(0x81000070)).publicKey.equals(publicKey));
    assertHoldsNoSecret(Buffer.from(tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000070')), privateKey, 'tpm2_readpublic');

    // TPM2_Duplicate needs the object's authPolicy to allow it; an imported key has
    // none, so even a policy session for TPM_CC_Duplicate is refused.
    const newParent = file('new-parent.ctx');
    tpm2(swtpm.tcti, 'createprimary', '-C', 'o', '-G', 'ecc256:aes128cfb', '-c', newParent);
    const session = file('session.ctx');
    tpm2(swtpm.tcti, 'startauthsession', '--policy-session', '-S', session);
    try {
      tpm2(swtpm.tcti, 'policycommandcode', '-S', session, 'TPM2_CC_Duplicate');
      // With or without the policy session, the TPM will not duplicate the key out.
      const key = ['-C', newParent, '-c', '0x81000070', '-G', 'null'];
      const out = ['-r', file('dup.priv'), '-s', file('dup.seed')];
      assert.throws(() => tpm2(swtpm.tcti, 'duplicate', ...key, '-p', `session:${session}`, ...out), /0x0*99d|policy/i);
      assert.throws(() => tpm2(swtpm.tcti, 'duplicate', ...key, ...out), /Esys_Duplicate/);
    } finally {
      tpm2(swtpm.tcti, 'flushcontext', session);
      tpm2(swtpm.tcti, 'flushcontext', '-t');
    }
  });

  it('CLI import of sa.json prints a descriptor that mints tokens for the original key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(
      file('sa.json'),
      JSON.stringify({
        type: 'service_account',
        project_id: 'p',
        private_key_id: 'abc123',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
        client_email: EMAIL,
      }),
    );
    const imported = await cli(['import', '--in', file('sa.json'), '--out', file('sa-key.pem'), '--tcti', swtpm.tcti]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal(statSync(file('sa-key.pem')).mode & 0o777, 0o600);
    const descriptor = JSON.parse(imported.stdout);
    assert.deepEqual(descriptor, {
      type: 'tpm_service_account',
      client_email: EMAIL,
      private_key_id: 'abc123',
      project_id: 'p',
      tpm: { tcti: swtpm.tcti, key: file('sa-key.pem') },
    });
    assertHoldsNoSecret(readFileSync(file('sa-key.pem')), privateKey, 'the written key file');

    writeFileSync(file('sa-tpm.json'), imported.stdout);
    const minted = await cli(['token', '--credentials', file('sa-tpm.json'), '--audience', AUD]);
    assert.equal(minted.code, 0, minted.stderr);
    const { payload, protectedHeader } = await jwtVerify(minted.stdout.trim(), publicKey, { audience: AUD });
    assert.equal(payload.iss, EMAIL);
    assert.equal(protectedHeader.kid, 'abc123');

    // inspect warns that an imported key may exist elsewhere.
    const inspected = await cli(['inspect', '--key', file('sa-key.pem'), '--tcti', swtpm.tcti]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stderr, /warning: this key is not fixedTPM\|fixedParent/);

    // Its JWKS carries the service account's key id.
    const jwks = await cli(['pubkey', '--credentials', file('sa-tpm.json'), '--format', 'jwks']);
    assert.equal(jwks.code, 0, jwks.stderr);
    assert.equal(JSON.parse(jwks.stdout).keys[0].kid, 'abc123');

    // An existing output file is refused and kept.
    const before = readFileSync(file('sa-key.pem'), 'utf8');
    assertFails(
      await cli(['import', '--in', file('sa.json'), '--out', file('sa-key.pem'), '--tcti', swtpm.tcti]),
      1,
      'ERR_INVALID_ARGUMENT',
    );
    assert.equal(readFileSync(file('sa-key.pem'), 'utf8'), before);
  });

  describe('refuses', () => {
    it('key types the TPM key cannot be (ERR_TPM_UNSUPPORTED)', async () => {
      const keys = [
        generateKeyPairSync('ed25519').privateKey,
        generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
        generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
      ];
      for (const key of keys) {
        await assert.rejects(tpm.importKey(key.export({ type: 'pkcs8', format: 'pem' }).toString()), {
          code: 'ERR_TPM_UNSUPPORTED',
        });
      }
    });

    it('what is not a private key (ERR_KEY_FILE_INVALID / ERR_INVALID_ARGUMENT)', async () => {
      await assert.rejects(tpm.importKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), {
        code: 'ERR_KEY_FILE_INVALID',
      });
      await assert.rejects(tpm.importKey({} as { private_key: string }), { code: 'ERR_INVALID_ARGUMENT' });
    });

    it('an occupied handle, keeping the key there (ERR_TPM_HANDLE_IN_USE)', async () => {
      const before = (await tpm.loadKey(0x81000070)).publicKey;
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await assert.rejects(
        tpm.importKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { persist: 0x81000070 }),
        { code: 'ERR_TPM_HANDLE_IN_USE' },
      );
      assert.ok((await tpm.loadKey(0x81000070)).publicKey.equals(before));
    });
  });
});
