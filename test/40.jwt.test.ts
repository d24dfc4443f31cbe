import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { OAuth2Client, JWTAccess } from 'google-auth-library';
import { jwtVerify, exportJWK } from 'jose';

import { jwt, SoftwareSigner, TpmSigner, type Signer } from '../lib/index.js';
import { useSwtpm } from './helpers/swtpm.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra: Record<string, unknown> = {}) => ({
  iss: 'sa@p.iam.gserviceaccount.com',
  sub: 'sa@p.iam.gserviceaccount.com',
  aud: 'https://storage.googleapis.com/',
  iat: now(),
  exp: now() + 3600,
  ...extra,
});
const pemOf = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

function softwareSigner(type: 'rsa' | 'ec', kid: string): SoftwareSigner {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), kid);
}

describe('40 jwt.encode / decode', () => {
  const swtpm = useSwtpm();
  const signers = new Map<string, Signer & { publicKey: KeyObject }>();

  before(async () => {
    const tpm = await swtpm.openTpm();
    const rsa = await tpm.createKey({ alg: 'RS256' });
    const ec = await tpm.createKey({ alg: 'ES256' });
    signers.set('TPM RS256', TpmSigner.fromKey(rsa, { keyId: 'tpm-rsa' }));
    signers.set('TPM PS256', TpmSigner.fromKey(rsa, { keyId: 'tpm-rsa', alg: 'PS256' }));
    signers.set('TPM ES256', TpmSigner.fromKey(ec, { keyId: 'tpm-ec' }));
    signers.set('software RS256', softwareSigner('rsa', 'sw-rsa'));
    signers.set('software ES256', softwareSigner('ec', 'sw-ec'));
  });

  for (const name of ['TPM RS256', 'TPM PS256', 'TPM ES256', 'software RS256', 'software ES256']) {
    describe(name, () => {
      it('encodes {alg, typ, kid} and unpadded base64url segments', async () => {
        const signer = signers.get(name)!;
        const token = await jwt.encode(signer, claims());
        assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
        assert.deepEqual(jwt.decodeHeader(token), { alg: signer.algorithm, typ: 'JWT', kid: signer.keyId });
      });

      it('verifies with jose and with jwt.decode for every form of certs', async () => {
        const signer = signers.get(name)!;
        const payload = claims();
        const token = await jwt.encode(signer, payload);
        assert.deepEqual((await jwtVerify(token, signer.publicKey)).payload, payload);
        const pem = pemOf(signer.publicKey);
        const jwk = { ...(await exportJWK(signer.publicKey)), kid: signer.keyId!, alg: signer.algorithm };
        for (const certs of [pem, [pem], signer.publicKey, { [signer.keyId!]: pem }, { keys: [jwk] }]) {
          assert.deepEqual(await jwt.decode(token, { certs, audience: payload.aud }), payload);
        }
      });

      if (!name.endsWith('PS256')) {
        // google-auth-library's verifier knows RS256 and ES256 only.
        it("passes google-auth-library's verifySignedJwtWithCertsAsync", async () => {
          const signer = signers.get(name)!;
          const token = await jwt.encode(signer, claims());
          const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(
            token,
            { [signer.keyId!]: pemOf(signer.publicKey) },
            'https://storage.googleapis.com/',
            ['sa@p.iam.gserviceaccount.com'],
          );
          assert.equal(ticket.getPayload()?.sub, 'sa@p.iam.gserviceaccount.com');
        });
      }
    });
  }

  it("decodes tokens minted by google-auth-library's JWTAccess", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const access = new JWTAccess(
      'sa@p.iam.gserviceaccount.com',
      privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      'ga-kid',
    );
    const headers = access.getRequestHeaders('https://pubsub.googleapis.com/');
    const bearer = headers.get('authorization')!;
    const token = bearer.replace(/^Bearer /, '');
    assert.deepEqual(jwt.decodeHeader(token), { alg: 'RS256', typ: 'JWT', kid: 'ga-kid' });
    const payload = await jwt.decode(token, {
      certs: { 'ga-kid': pemOf(publicKey) },
      audience: 'https://pubsub.googleapis.com/',
    });
    assert.equal(payload.iss, 'sa@p.iam.gserviceaccount.com');
    assert.equal(payload.sub, 'sa@p.iam.gserviceaccount.com');
  });

  it('decodes with an X.509 certificate made by openssl, alone or by kid', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tpm-jwt-cert-'));
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const keyFile = path.join(dir, 'key.pem');
      writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const certPem = execFileSync(
        'openssl',
        ['req', '-new', '-x509', '-key', keyFile, '-subj', '/CN=sa', '-days', '1'],
        { encoding: 'utf8' },
      );
      const signer = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'cert-kid');
      const token = await jwt.encode(signer, claims());
      assert.equal((await jwt.decode(token, { certs: certPem })).sub, 'sa@p.iam.gserviceaccount.com');
      assert.ok(await jwt.decode(token, { certs: { 'cert-kid': certPem } }));
      await assert.rejects(jwt.decode(token, { certs: 'not a pem' }), { code: 'ERR_INVALID_ARGUMENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('mixed certificate lists, no kid: keys of the wrong type are skipped', () => {
    const keyPair = (type: 'rsa' | 'ec') =>
      type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // Signers without a keyId, so the tokens carry no kid and every certificate is a candidate.
    const signerOf = (privateKey: KeyObject) =>
      SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    let rsaPem: string;
    let ecPem: string;
    let otherRsaPem: string;
    let rs256: string;
    let es256: string;
    before(async () => {
      const rsa = keyPair('rsa');
      const ec = keyPair('ec');
      rsaPem = pemOf(rsa.publicKey);
      ecPem = pemOf(ec.publicKey);
      otherRsaPem = pemOf(keyPair('rsa').publicKey);
      rs256 = await jwt.encode(signerOf(rsa.privateKey), claims());
      es256 = await jwt.encode(signerOf(ec.privateKey), claims());
      assert.equal(jwt.decodeHeader(rs256).kid, undefined);
    });

    it('verifies RS256 and ES256 with a list in either order', async () => {
      for (const certs of [
        [ecPem, rsaPem],
        [rsaPem, ecPem],
        [ecPem, otherRsaPem, rsaPem],
      ]) {
        assert.equal((await jwt.decode(rs256, { certs })).sub, 'sa@p.iam.gserviceaccount.com');
        assert.equal((await jwt.decode(es256, { certs: [...certs].reverse() })).sub, 'sa@p.iam.gserviceaccount.com');
      }
    });

    it('verifies RS256 and ES256 with a { kid: pem } mapping in either order', async () => {
      for (const certs of [
        { ec: ecPem, rsa: rsaPem },
        { rsa: rsaPem, ec: ecPem },
      ]) {
        assert.equal((await jwt.decode(rs256, { certs })).sub, 'sa@p.iam.gserviceaccount.com');
        assert.equal((await jwt.decode(es256, { certs })).sub, 'sa@p.iam.gserviceaccount.com');
      }
    });

    it('no key of the right type (ERR_JWKS_NO_MATCHING_KEY)', async () => {
      for (const certs of [[ecPem], { a: ecPem, b: ecPem }, ecPem]) {
        await assert.rejects(jwt.decode(rs256, { certs }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
      }
      await assert.rejects(jwt.decode(es256, { certs: [rsaPem, otherRsaPem] }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    });

    it('keys of the right type that did not sign it (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)', async () => {
      for (const certs of [[ecPem, otherRsaPem], [otherRsaPem, ecPem], { ec: ecPem, other: otherRsaPem }]) {
        await assert.rejects(jwt.decode(rs256, { certs }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
      }
    });

    it('with a kid, the mapping entry it names is the only candidate', async () => {
      const signer = signers.get('software RS256')!;
      const token = await jwt.encode(signer, claims());
      const good = pemOf(signer.publicKey);
      assert.ok(await jwt.decode(token, { certs: { other: ecPem, [signer.keyId!]: good } }));
      await assert.rejects(jwt.decode(token, { certs: { [signer.keyId!]: otherRsaPem, other: good } }), {
        code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      });
      await assert.rejects(jwt.decode(token, { certs: { other: good } }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    });
  });

  it('decode with verify: false returns the payload unchecked', async () => {
    const token = await jwt.encode(signers.get('software ES256')!, claims({ exp: 1 }));
    assert.equal((await jwt.decode(token, { verify: false })).exp, 1);
  });

  describe('refuses', () => {
    let good: string;
    let signer: Signer & { publicKey: KeyObject };
    let pem: string;
    before(async () => {
      signer = signers.get('TPM RS256')!;
      pem = pemOf(signer.publicKey);
      good = await jwt.encode(signer, claims());
    });

    it('alg none (ERR_JOSE_ALG_NOT_ALLOWED)', async () => {
      const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
      await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
    });

    it('HS256 signed with the public key as the secret (ERR_JOSE_ALG_NOT_ALLOWED)', async () => {
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims())}`;
      const mac = createHmac('sha256', pem).update(input).digest('base64url');
      await assert.rejects(jwt.decode(`${input}.${mac}`, { certs: pem }), { code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
      await assert.rejects(jwt.decode(good, { certs: pem, algorithms: ['HS256' as 'RS256'] }), {
        code: 'ERR_INVALID_ARGUMENT',
      });
    });

    it('an algorithm outside the allow-list (ERR_JOSE_ALG_NOT_ALLOWED)', async () => {
      await assert.rejects(jwt.decode(good, { certs: pem, algorithms: ['ES256'] }), {
        code: 'ERR_JOSE_ALG_NOT_ALLOWED',
      });
    });

    it('a tampered payload (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)', async () => {
      const [header, , signature] = good.split('.');
      const token = `${header}.${b64(claims({ sub: 'attacker' }))}.${signature}`;
      await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    });

    it('a key that did not sign it (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)', async () => {
      const other = pemOf(signers.get('software RS256')!.publicKey);
      await assert.rejects(jwt.decode(good, { certs: [other] }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
    });

    it('an expired token, unless within clockSkewSeconds (ERR_JWT_EXPIRED)', async () => {
      const token = await jwt.encode(signer, claims({ iat: now() - 3700, exp: now() - 100 }));
      await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JWT_EXPIRED' });
      await assert.rejects(jwt.decode(token, { certs: pem, clockSkewSeconds: 10 }), { code: 'ERR_JWT_EXPIRED' });
      assert.ok(await jwt.decode(token, { certs: pem, clockSkewSeconds: 300 }));
    });

    it('a token issued in the future (ERR_JWT_CLAIM_VALIDATION_FAILED)', async () => {
      const token = await jwt.encode(signer, claims({ iat: now() + 600, exp: now() + 900 }));
      await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
    });

    it('a token without iat or exp (ERR_JWT_CLAIM_VALIDATION_FAILED)', async () => {
      for (const drop of ['iat', 'exp']) {
        const payload: Record<string, unknown> = claims();
        delete payload[drop];
        const token = await jwt.encode(signer, payload);
        await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
      }
    });

    it('a wrong audience, string or list (ERR_JWT_CLAIM_VALIDATION_FAILED)', async () => {
      await assert.rejects(jwt.decode(good, { certs: pem, audience: 'https://pubsub.googleapis.com/' }), {
        code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
      });
      await assert.rejects(jwt.decode(good, { certs: pem, audience: ['a', 'b'] }), {
        code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
      });
      assert.ok(await jwt.decode(good, { certs: pem, audience: ['a', 'https://storage.googleapis.com/'] }));
    });

    it('a kid missing from the certs mapping or JWKS (ERR_JWKS_NO_MATCHING_KEY)', async () => {
      await assert.rejects(jwt.decode(good, { certs: { other: pem } }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
      const jwk = { ...(await exportJWK(signer.publicKey)), kid: 'other' };
      await assert.rejects(jwt.decode(good, { certs: { keys: [jwk] } }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    });

    it('malformed and non-JSON segments (ERR_JWS_INVALID)', async () => {
      const [header, payload, signature] = good.split('.');
      const bad = [
        '',
        'abc',
        `${header}.${payload}`,
        `${header}.${payload}.${signature}.extra`,
        `${b64('x').slice(0, -1)}!.${payload}.${signature}`,
        `${Buffer.from('not json').toString('base64url')}.${payload}.${signature}`,
        `${header}.${Buffer.from('{"iat":').toString('base64url')}.${signature}`,
        `${b64([1, 2])}.${payload}.${signature}`,
      ];
      for (const token of bad) {
        await assert.rejects(jwt.decode(token, { certs: pem }), { code: 'ERR_JWS_INVALID' }, token);
      }
      assert.throws(() => jwt.decodeHeader('nope'), { code: 'ERR_JWS_INVALID' });
      assert.throws(() => jwt.decodeHeader(42 as unknown as string), { code: 'ERR_JWS_INVALID' });
    });
  });

  it('encode refuses a non-object payload and a conflicting header alg (ERR_INVALID_ARGUMENT)', async () => {
    const signer = signers.get('software ES256')!;
    await assert.rejects(jwt.encode(signer, 'x' as unknown as Record<string, unknown>), {
      code: 'ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(jwt.encode(signer, claims(), { header: { alg: 'RS256' } }), { code: 'ERR_INVALID_ARGUMENT' });
    const token = await jwt.encode(signer, claims(), { keyId: 'override', header: { x5u: 'u' } });
    assert.deepEqual(jwt.decodeHeader(token), { alg: 'ES256', typ: 'JWT', kid: 'override', x5u: 'u' });
  });
});
