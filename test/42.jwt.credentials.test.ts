import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as path from 'node:path';

import { JWTAccess } from 'google-auth-library';

import { jwt, SoftwareSigner, Tpm } from '../lib/index.js';
import { countingSigner as counting } from './helpers/counting-signer.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';
import { overlayEnv } from './helpers/env.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const AUD = 'https://storage.googleapis.com/';

describe('42 jwt.Credentials', () => {
  const swtpm = useSwtpm();
  let dir: string;
  let rsaPem: string;
  let rsaPublicPem: string;

  before(() => {
    dir = swtpm.tempDir('creds');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    rsaPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    rsaPublicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  });

  it('signs with a TPM key named by a tpm_service_account descriptor file', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    const key = await tpm.createKey({ alg: 'ES256', persist: 0x81008001, auth: 'pin' });
    swtpm.cleanup(async () => {
      const cleanup = await Tpm.open({ tcti: swtpm.tcti });
      await cleanup.evict(0x81008001);
      await cleanup.close();
    });
    await tpm.close();
    const descriptor = writeDescriptor(path.join(dir, 'tpm-sa.json'), {
      client_email: EMAIL,
      private_key_id: 'kid-1',
      project_id: 'p',
      tpm: { tcti: swtpm.tcti, key: 'handle:0x81008001', auth_env: 'TEST_TPM_KEY_AUTH' },
    });
    const restore = overlayEnv({ TEST_TPM_KEY_AUTH: 'pin' });
    const creds = await jwt.Credentials.fromServiceAccountFile(descriptor, { audience: AUD });
    try {
      const headers: Record<string, string> = {};
      await creds.beforeRequest(null, 'GET', `${AUD}storage/v1/b`, headers);
      const token = headers['authorization']!.replace(/^Bearer /, '');
      assert.deepEqual(jwt.decodeHeader(token), { alg: 'ES256', typ: 'JWT', kid: 'kid-1' });
      const claims = await jwt.decode(token, { certs: key.publicKey, audience: AUD });
      assert.equal(claims.iss, EMAIL);
      assert.equal(claims.sub, EMAIL);
      assert.equal(claims.exp! - claims.iat!, 3600);
      assert.equal(creds.expiry!.getTime(), claims.exp! * 1000);
      assert.ok(creds.valid && !creds.expired);
    } finally {
      restore();
      await (creds.signer as { close?: () => Promise<void> }).close?.();
    }
  });

  it('makes the same header and claims as google-auth-library JWTAccess for the same key', async () => {
    const url = 'https://pubsub.googleapis.com/';
    const ours = await jwt.Credentials.fromServiceAccountInfo(
      { type: 'service_account', client_email: EMAIL, private_key: rsaPem, private_key_id: 'k' },
      { audience: url },
    );
    await ours.refresh();
    const theirs = new JWTAccess(EMAIL, rsaPem, 'k').getRequestHeaders(url).get('authorization')!.slice(7);
    assert.deepEqual(jwt.decodeHeader(ours.token!), jwt.decodeHeader(theirs));
    const a = await jwt.decode(ours.token!, { certs: rsaPublicPem, audience: url });
    const b = await jwt.decode(theirs, { certs: rsaPublicPem, audience: url });
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
    assert.equal(a.iss, b.iss);
    assert.equal(a.sub, b.sub);
    assert.equal(a.aud, b.aud);
    assert.ok(Math.abs(a.iat! - b.iat!) <= 2);
    assert.equal(a.exp! - a.iat!, b.exp! - b.iat!);
  });

  it('concurrent beforeRequest calls share one signing', async () => {
    const signer = counting(SoftwareSigner.fromPem(rsaPem));
    const creds = new jwt.Credentials(signer, { issuer: EMAIL, subject: EMAIL, audience: AUD });
    const headers = Array.from({ length: 50 }, () => ({}) as Record<string, string>);
    await Promise.all(headers.map((h) => creds.beforeRequest(null, 'GET', AUD, h)));
    assert.equal(signer.count, 1);
    assert.ok(headers.every((h) => h['authorization'] === `Bearer ${creds.token}`));
    await creds.beforeRequest(null, 'GET', AUD, {});
    assert.equal(signer.count, 1, 'a valid token is reused');
  });

  it('counts a token as expired from the refresh threshold before its expiry', async () => {
    const signer = SoftwareSigner.fromPem(rsaPem);
    const long = new jwt.Credentials(signer, { issuer: EMAIL, subject: EMAIL, audience: AUD, tokenLifetime: 300 });
    assert.equal(long.expired, false, 'no token yet is not expired');
    assert.equal(long.valid, false);
    await long.refresh();
    assert.ok(long.valid);
    const short = new jwt.Credentials(signer, {
      issuer: EMAIL,
      subject: EMAIL,
      audience: AUD,
      tokenLifetime: jwt.REFRESH_THRESHOLD_SECONDS - 5,
    });
    await short.refresh();
    assert.equal(short.expired, true);
    assert.equal(short.valid, false);
  });

  it('withClaims keeps tokenLifetime and quota project; withQuotaProject sets x-goog-user-project', async () => {
    const signer = SoftwareSigner.fromPem(rsaPem);
    const base = new jwt.Credentials(signer, {
      issuer: EMAIL,
      subject: EMAIL,
      audience: AUD,
      tokenLifetime: 600,
      additionalClaims: { a: 1 },
    });
    const changed = base.withQuotaProject('billing').withClaims({ audience: 'https://x/', additionalClaims: { b: 2 } });
    assert.equal(changed.tokenLifetime, 600);
    assert.equal(changed.quotaProjectId, 'billing');
    const headers = new Headers();
    await changed.beforeRequest(null, 'GET', 'https://x/', headers);
    assert.equal(headers.get('x-goog-user-project'), 'billing');
    const claims = await jwt.decode(headers.get('authorization')!.slice(7), {
      certs: rsaPublicPem,
      audience: 'https://x/',
    });
    assert.equal(claims['a'], 1);
    assert.equal(claims['b'], 2);
    assert.equal(claims.exp! - claims.iat!, 600);
  });

  it('scope mode puts a scope claim and no aud; both at once is ERR_INVALID_ARGUMENT', async () => {
    const signer = SoftwareSigner.fromPem(rsaPem);
    const scope = 'https://www.googleapis.com/auth/cloud-platform';
    const creds = new jwt.Credentials(signer, { issuer: EMAIL, subject: EMAIL, additionalClaims: { scope } });
    await creds.refresh();
    const claims = await jwt.decode(creds.token!, { certs: rsaPublicPem });
    assert.equal(claims['scope'], scope);
    assert.equal(claims.aud, undefined);
    assert.throws(() => creds.withClaims({ audience: AUD }), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('fromSigningCredentials reuses the signer and email for another audience', async () => {
    const base = new jwt.Credentials(SoftwareSigner.fromPem(rsaPem), { issuer: EMAIL, subject: EMAIL });
    const other = jwt.Credentials.fromSigningCredentials(base, { audience: 'https://other/' });
    assert.equal(other.signer, base.signer);
    assert.equal(other.signerEmail, EMAIL);
    assert.equal(other.audience, 'https://other/');
    assert.ok(await other.signBytes(Buffer.from('x')));
  });

  it('refuses bad service account info with ERR_KEY_FILE_INVALID', async () => {
    const cases: unknown[] = [
      null,
      { type: 'service_account', private_key: rsaPem },
      { type: 'authorized_user', client_email: EMAIL },
      { type: 'service_account', client_email: EMAIL, private_key: 'not a key' },
      { type: 'tpm_service_account', client_email: EMAIL, tpm: {} },
      { type: 'tpm_service_account', client_email: EMAIL, tpm: { key: '0x81000001', auth_env: 'UNSET_VAR_X' } },
    ];
    for (const info of cases) {
      await assert.rejects(jwt.Credentials.fromServiceAccountInfo(info as never), { code: 'ERR_KEY_FILE_INVALID' });
    }
    await assert.rejects(jwt.Credentials.fromServiceAccountFile(path.join(dir, 'missing.json')), {
      code: 'ERR_KEY_FILE_INVALID',
    });
  });
});
