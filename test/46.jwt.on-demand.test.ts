import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';

import { jwt, SoftwareSigner, TpmSigner, type Signer } from '../lib/index.js';
import { countingSigner as counting } from './helpers/counting-signer.js';
import { useSwtpm } from './helpers/swtpm.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';

describe('46 jwt.OnDemandCredentials', () => {
  const swtpm = useSwtpm();
  let tpmSigner: TpmSigner;
  let software: SoftwareSigner;

  before(async () => {
    const tpm = await swtpm.openTpm();
    tpmSigner = TpmSigner.fromKey(await tpm.createKey({ alg: 'RS256' }), { keyId: 'k' });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    software = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  });

  const make = (signer: Signer, options: Partial<jwt.OnDemandCredentialsOptions> = {}) =>
    new jwt.OnDemandCredentials(signer, { issuer: EMAIL, subject: EMAIL, ...options });

  it('200 concurrent requests for one URL cost exactly one TPM signing', async () => {
    const signer = counting(tpmSigner);
    const creds = make(signer);
    const headers = Array.from({ length: 200 }, () => ({}) as Record<string, string>);
    await Promise.all(
      headers.map((h, i) => creds.beforeRequest(null, 'GET', `https://pubsub.googleapis.com/v1/topics?page=${i}#x`, h)),
    );
    assert.equal(signer.count, 1);
    const token = headers[0]!['authorization']!.slice('Bearer '.length);
    assert.ok(headers.every((h) => h['authorization'] === `Bearer ${token}`));
    const claims = await jwt.decode(token, {
      certs: tpmSigner.publicKey,
      audience: 'https://pubsub.googleapis.com/v1/topics',
    });
    assert.equal(claims.iss, EMAIL);
    assert.equal(claims.exp! - claims.iat!, 3600);
  });

  it('keeps one token per audience and evicts the least recently used past maxCacheSize', async () => {
    const signer = counting(software);
    const creds = make(signer, { maxCacheSize: 2 });
    const get = (path: string) => creds.tokenForAudience(`https://example.com/${path}`);
    const a = await get('a');
    await get('b');
    assert.equal(await get('a'), a, 'a is cached');
    assert.equal(signer.count, 2);
    await get('c'); // evicts b, the least recently used
    assert.equal(signer.count, 3);
    assert.equal(await get('a'), a);
    await get('b');
    assert.equal(signer.count, 4, 'b was evicted and minted again');
  });

  it('does not cache a failed signing: the next request signs again', async () => {
    const signer = counting(software, 1);
    const creds = make(signer);
    const url = 'https://storage.googleapis.com/b';
    const concurrent = [creds.beforeRequest(null, 'GET', url, {}), creds.beforeRequest(null, 'GET', url, {})];
    for (const result of await Promise.allSettled(concurrent)) {
      assert.equal(result.status, 'rejected');
      assert.equal((result as PromiseRejectedResult).reason.code, 'ERR_TPM_OBJECT_MEMORY');
    }
    assert.equal(signer.count, 1, 'the two concurrent requests shared the failed signing');
    const headers: Record<string, string> = {};
    await creds.beforeRequest(null, 'GET', url, headers);
    assert.match(headers['authorization']!, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(signer.count, 2);
  });

  it('mints a new token when the cached one is close to expiry', async () => {
    const signer = counting(software);
    const creds = make(signer, { tokenLifetime: jwt.REFRESH_THRESHOLD_SECONDS - 1 });
    await creds.tokenForAudience('https://example.com/');
    await creds.tokenForAudience('https://example.com/');
    assert.equal(signer.count, 2);
  });

  it('sends the quota project, keeps settings through withClaims, and is always valid', async () => {
    const creds = make(software, { tokenLifetime: 600, maxCacheSize: 3 })
      .withQuotaProject('q')
      .withClaims({
        additionalClaims: { extra: 'x' },
      });
    assert.equal(creds.valid, true);
    assert.equal(creds.tokenLifetime, 600);
    assert.equal(creds.maxCacheSize, 3);
    const headers = new Headers();
    await creds.beforeRequest(null, 'POST', 'https://example.com/p', headers);
    assert.equal(headers.get('x-goog-user-project'), 'q');
    const claims = await jwt.decode(headers.get('authorization')!.slice(7), { certs: software.publicKey });
    assert.equal(claims['extra'], 'x');
    assert.equal(claims.aud, 'https://example.com/p');
    await assert.rejects(creds.refresh(), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('computes the audience as scheme://host/path', () => {
    assert.equal(jwt.audienceForUrl('https://u:p@host:8443/a/b?q=1#f'), 'https://host:8443/a/b');
    assert.equal(jwt.audienceForUrl('https://pubsub.googleapis.com'), 'https://pubsub.googleapis.com/');
    assert.throws(() => jwt.audienceForUrl('/relative'), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('refuses aud or scope in additionalClaims and bad sizes (ERR_INVALID_ARGUMENT)', () => {
    for (const options of [
      { additionalClaims: { aud: 'x' } },
      { additionalClaims: { scope: 'x' } },
      { maxCacheSize: 0 },
      { tokenLifetime: -1 },
    ]) {
      assert.throws(() => make(software, options), { code: 'ERR_INVALID_ARGUMENT' });
    }
  });
});
