/**
 * Cloud Storage signed URLs and POST policies signed in the TPM: Storage 7 and 8 make
 * them through TpmAuthClient (GoogleAuth's signBlob call answered in the client, never
 * sent to IAM), the CLI makes them alone, and a stand-in GCS that checks every
 * signature against the TPM key's public key serves objects only to those that verify.
 */
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, verify } from 'node:crypto';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { GoogleAuth as GoogleAuth11 } from 'gal11';
import { GoogleAuth as GoogleAuth10 } from 'google-auth-library';
import { Storage as Storage7 } from 'storage7';
import { Storage as Storage8 } from 'storage8';

import { SoftwareSigner, TpmSigner, type Signer, type TpmKey } from '../lib/index.js';
import { TpmAuthClient, tpmStorageOptions } from '../lib/google/index.js';
import { signStorageUrl } from '../lib/google/storage.js';
import { assertFails, cli } from './helpers/cli.js';
import { countingSigner } from './helpers/counting-signer.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { startFakeGcs, type FakeGcs } from './helpers/fake-gcs.js';
import { startFakeGoogle } from './helpers/fake-google.js';
import { loopbackOnly } from './helpers/loopback-only.js';
import { useSwtpm } from './helpers/swtpm.js';

// google-auth-library 9, as @google-cloud/storage 7 bundles it.
const { GoogleAuth: GoogleAuth9 } = createRequire(createRequire(import.meta.url).resolve('storage7'))(
  'google-auth-library',
) as typeof import('google-auth-library');

const EMAIL = 'sa@p1.iam.gserviceaccount.com';
const HANDLE = '0x81008701';
const BUCKET = 'b87';
const MINUTE = 60_000;

/** Whether `signature` (base64) is the RSASSA-PKCS1-v1_5 SHA-256 signature of `data` by `key`. */
const rsaVerifies = (key: TpmKey, data: string | Uint8Array, signature: string) =>
  verify(
    'sha256',
    Buffer.from(data),
    { key: key.publicKey, padding: constants.RSA_PKCS1_PADDING },
    Buffer.from(signature, 'base64'),
  );

/**
 * google-auth-library 11 logs a deprecation notice for every GoogleAuth given
 * `credentials`, which here holds only the email (tpmStorageOptions says why): expected,
 * so kept out of the test report. Any other warning still shows.
 */
function hideCredentialsNotice(): void {
  const warn = console.warn;
  before(() => {
    console.warn = (...args: unknown[]) => {
      if (!/The `credentials` option is deprecated/.test(String(args[0]))) warn(...args);
    };
  });
  after(() => {
    console.warn = warn;
  });
}

describe('54 Storage signed URLs and signBlob with the TPM key', () => {
  const swtpm = useSwtpm();
  const network = loopbackOnly();
  hideCredentialsNotice();
  let key: TpmKey;
  let ecKey: TpmKey;
  let gcs: FakeGcs;
  let dir: string;
  let descriptor: string;

  before(async () => {
    const tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'RS256', persist: Number(HANDLE) });
    swtpm.cleanup(() => tpm.evict(Number(HANDLE)));
    ecKey = await tpm.createKey({ alg: 'ES256' });
    gcs = await startFakeGcs({ [EMAIL]: key.publicKey });
    swtpm.cleanup(() => gcs.close());
    dir = swtpm.tempDir('signed-urls');
    descriptor = writeDescriptor(path.join(dir, 'sa.json'), {
      client_email: EMAIL,
      project_id: 'p1',
      tpm: { tcti: swtpm.tcti, key: `handle:${HANDLE}` },
    });
  });
  beforeEach(() => {
    gcs.now = () => Date.now();
    gcs.objects.clear();
    gcs.objects.set(`${BUCKET}/reports/q3 summary.txt`, Buffer.from('third quarter'));
  });
  after(() => assert.deepEqual(network.attempts, [], 'nothing outside loopback was contacted: no IAM call'));

  const client = (signer: Signer = TpmSigner.fromKey(key, { keyId: 'kid-87' })) =>
    new TpmAuthClient({ signer, email: EMAIL, projectId: 'p1' });

  /** The last request the stand-in GCS refused, with this status and error code. */
  async function assertRefused(response: Response, status: number, code: string): Promise<void> {
    assert.equal(response.status, status, await response.text());
    assert.equal(gcs.log.at(-1)!.code, code);
  }

  /** `url` with one query parameter changed. */
  function withParam(url: string, name: string, value: string): string {
    const changed = new URL(url);
    changed.searchParams.set(name, value);
    return changed.href;
  }

  describe('signBlob', () => {
    it('sign() is the RSASSA-PKCS1-v1_5 SHA-256 signature IAM would return, one TPM signing per call', async () => {
      const signer = countingSigner(TpmSigner.fromKey(key));
      const tpmClient = client(signer);
      const text = 'GOOG4-RSA-SHA256\n20250101T000000Z\nhéllo';
      const signature = await tpmClient.sign(text);
      assert.ok(rsaVerifies(key, text, signature));
      assert.equal(await tpmClient.sign(Buffer.from(text, 'utf8')), signature, 'text is signed as UTF-8');
      assert.equal(signer.count, 2);
    });

    // Each major's own GoogleAuth, as the Storage client of that major builds it.
    type AnyGoogleAuth = new (options: object) => Pick<GoogleAuth10, 'sign' | 'getCredentials'>;
    for (const [version, GoogleAuth] of [
      ['9', GoogleAuth9],
      ['10', GoogleAuth10],
      ['11', GoogleAuth11],
    ] as [string, AnyGoogleAuth][]) {
      it(`GoogleAuth ${version}: sign() and getCredentials() via the client; signBlob in the TPM`, async () => {
        const signer = countingSigner(TpmSigner.fromKey(key));
        const auth = new GoogleAuth(tpmStorageOptions(client(signer)));
        assert.equal((await auth.getCredentials()).client_email, EMAIL);
        const signature = await auth.sign('policy-or-string-to-sign');
        assert.ok(rsaVerifies(key, 'policy-or-string-to-sign', signature));
        assert.equal(signer.count, 1);
      });
    }

    it("leaves signBlob for another account, or without a payload, to IAM, with the client's own token", async () => {
      const google = await startFakeGoogle(key.publicKey);
      try {
        const url = `${google.origin}/v1/projects/-/serviceAccounts/other@p1.iam.gserviceaccount.com:signBlob`;
        await assert.rejects(client().request({ method: 'POST', url, data: { payload: 'eA==' } }), { status: 404 });
        assert.equal(google.requests.at(-1)!.path, new URL(url).pathname);
        assert.equal(google.requests.at(-1)!.claims?.iss, EMAIL);
        const own = `${google.origin}/v1/projects/-/serviceAccounts/${EMAIL}:signBlob`;
        await assert.rejects(client().request({ method: 'POST', url: own, data: { bytesToSign: 'eA==' } }), {
          status: 404,
        });
        assert.equal(google.requests.at(-1)!.path, new URL(own).pathname);
      } finally {
        await google.close();
      }
    });

    it('refuses an ES256 key and a closed client', async () => {
      const url = `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${EMAIL}:signBlob`;
      const ec = client(TpmSigner.fromKey(ecKey));
      await assert.rejects(ec.sign('x'), { code: 'ERR_JOSE_ALG_NOT_ALLOWED', message: /RSA only.*ES256/ });
      const closed = client();
      await closed.close();
      await assert.rejects(closed.sign('x'), { code: 'ERR_TPM_CLOSED' });
      await assert.rejects(closed.request({ method: 'POST', url, data: { payload: 'eA==' } }), {
        code: 'ERR_TPM_CLOSED',
      });
    });
  });

  for (const [name, Storage] of [
    ['Storage 7 (google-auth-library 9)', Storage7],
    ['Storage 8 (google-auth-library 11)', Storage8],
  ] as const) {
    describe(name, () => {
      const file = (object = 'reports/q3 summary.txt', signer?: Signer) =>
        new Storage({ ...tpmStorageOptions(client(signer)), apiEndpoint: gcs.origin }).bucket(BUCKET).file(object);
      const expires = () => Date.now() + 15 * MINUTE;

      it('V4 read, write, delete and resumable URLs work, and only for their own method and object', async () => {
        const [read] = await file().getSignedUrl({ version: 'v4', action: 'read', expires: expires() });
        assert.match(read, /X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p1/);
        const got = await fetch(read);
        assert.equal(got.status, 200);
        assert.equal(await got.text(), 'third quarter');
        await assertRefused(await fetch(read, { method: 'DELETE' }), 403, 'SignatureDoesNotMatch');

        const [write] = await file('uploads/new.bin').getSignedUrl({
          version: 'v4',
          action: 'write',
          expires: expires(),
        });
        assert.equal((await fetch(write, { method: 'PUT', body: Buffer.from('uploaded') })).status, 200);
        assert.equal(gcs.objects.get(`${BUCKET}/uploads/new.bin`)?.toString(), 'uploaded');

        const [remove] = await file().getSignedUrl({ version: 'v4', action: 'delete', expires: expires() });
        assert.equal((await fetch(remove, { method: 'DELETE' })).status, 204);
        assert.equal(gcs.objects.has(`${BUCKET}/reports/q3 summary.txt`), false);

        const [resumable] = await file('big/video.mp4').getSignedUrl({
          version: 'v4',
          action: 'resumable',
          expires: expires(),
        });
        // Without the header the URL was signed with.
        await assertRefused(await fetch(resumable, { method: 'POST' }), 403, 'AccessDenied');
        const started = await fetch(resumable, { method: 'POST', headers: { 'x-goog-resumable': 'start' } });
        assert.equal(started.status, 201);
        const session = started.headers.get('location')!;
        assert.equal((await fetch(session, { method: 'PUT', body: Buffer.from('frames') })).status, 200);
        assert.equal(gcs.objects.get(`${BUCKET}/big/video.mp4`)?.toString(), 'frames');
      });

      it('V4: a tampered, expired or foreign-key URL gets 403', async () => {
        const [url] = await file().getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + 10 * MINUTE });
        assert.equal((await fetch(url)).status, 200, 'the untouched URL works');
        gcs.objects.set(`${BUCKET}/reports/q4.txt`, Buffer.from('fourth quarter'));
        await assertRefused(await fetch(url.replace('/q3%20summary.txt?', '/q4.txt?')), 403, 'SignatureDoesNotMatch');
        await assertRefused(await fetch(withParam(url, 'X-Goog-Expires', '604800')), 403, 'SignatureDoesNotMatch');
        const signature = new URL(url).searchParams.get('X-Goog-Signature')!;
        const flipped = `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`;
        await assertRefused(await fetch(withParam(url, 'X-Goog-Signature', flipped)), 403, 'SignatureDoesNotMatch');
        const unsigned = new URL(url);
        unsigned.search = '';
        await assertRefused(await fetch(unsigned), 403, 'AccessDenied');

        gcs.now = () => Date.now() + 11 * MINUTE;
        await assertRefused(await fetch(url), 403, 'ExpiredToken');
        gcs.now = () => Date.now();

        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const other = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
        const [forged] = await file(undefined, other).getSignedUrl({
          version: 'v4',
          action: 'read',
          expires: expires(),
        });
        await assertRefused(await fetch(forged), 403, 'SignatureDoesNotMatch');
      });

      it('V2 URLs verify the same way', async () => {
        const [read] = await file().getSignedUrl({ version: 'v2', action: 'read', expires: expires() });
        assert.match(read, /GoogleAccessId=sa%40p1.*&Signature=/);
        assert.equal(await (await fetch(read)).text(), 'third quarter');
        const [write] = await file('v2/up.txt').getSignedUrl({ version: 'v2', action: 'write', expires: expires() });
        assert.equal((await fetch(write, { method: 'PUT', body: Buffer.from('v2 upload') })).status, 200);
        assert.equal(gcs.objects.get(`${BUCKET}/v2/up.txt`)?.toString(), 'v2 upload');

        await assertRefused(
          await fetch(read.replace('/q3%20summary.txt?', '/v2/up.txt?')),
          403,
          'SignatureDoesNotMatch',
        );
        const later = String(Math.floor(Date.now() / 1000) + 3600);
        await assertRefused(await fetch(withParam(read, 'Expires', later)), 403, 'SignatureDoesNotMatch');
        gcs.now = () => Date.now() + 16 * MINUTE;
        await assertRefused(await fetch(read), 403, 'ExpiredToken');
      });

      it('V4 POST policies upload within their conditions, and nothing else', async () => {
        const post = async (fields: Record<string, string>, body: string) => {
          const form = new FormData();
          for (const [name, value] of Object.entries(fields)) form.append(name, value);
          form.append('file', new Blob([body]), 'upload.txt');
          return fetch(policy.url, { method: 'POST', body: form });
        };
        const [policy] = await file('forms/photo.txt').generateSignedPostPolicyV4({
          expires: Date.now() + 10 * MINUTE,
          conditions: [['content-length-range', 0, 16]],
          fields: { 'x-goog-meta-source': 'tpm', 'x-ignore-note': 'not in the policy' },
        });
        assert.equal(policy.fields['x-goog-algorithm'], 'GOOG4-RSA-SHA256');
        assert.equal((await post(policy.fields, 'small photo')).status, 204);
        assert.equal(gcs.objects.get(`${BUCKET}/forms/photo.txt`)?.toString(), 'small photo');

        await assertRefused(await post({ ...policy.fields, key: 'forms/other.txt' }, 'x'), 403, 'AccessDenied');
        await assertRefused(await post({ ...policy.fields, acl: 'public-read' }, 'x'), 403, 'AccessDenied');
        await assertRefused(await post(policy.fields, 'far more than sixteen bytes'), 403, 'EntityTooLarge');
        const tampered = Buffer.from(policy.fields['policy']!, 'base64').toString().replace('"tpm"', '"evil"');
        const forgedPolicy = { ...policy.fields, policy: Buffer.from(tampered).toString('base64') };
        await assertRefused(
          await post({ ...forgedPolicy, 'x-goog-meta-source': 'evil' }, 'x'),
          403,
          'SignatureDoesNotMatch',
        );
        gcs.now = () => Date.now() + 11 * MINUTE;
        await assertRefused(await post(policy.fields, 'late'), 403, 'ExpiredToken');
        gcs.now = () => Date.now();

        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const other = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
        const [foreign] = await file('forms/photo.txt', other).generateSignedPostPolicyV4({ expires: expires() });
        await assertRefused(await post(foreign.fields, 'x'), 403, 'SignatureDoesNotMatch');
      });

      it('an ES256 key fails signing with a clear error (GCS signatures are RSA only)', async () => {
        const ec = TpmSigner.fromKey(ecKey);
        const message = /RSA only.*ES256/;
        await assert.rejects(file(undefined, ec).getSignedUrl({ version: 'v4', action: 'read', expires: expires() }), {
          name: 'SigningError',
          message,
        });
        await assert.rejects(file(undefined, ec).generateSignedPostPolicyV4({ expires: expires() }), {
          name: 'SigningError',
          message,
        });
      });
    });
  }

  it("signStorageUrl makes byte-for-byte Storage 8's V4 URL for the same time", async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const object = "reports/q3 summary (final)*!'~.txt";
    for (const method of ['GET', 'PUT'] as const) {
      const [storageUrl] = await new Storage8({ ...tpmStorageOptions(client()), apiEndpoint: gcs.origin })
        .bucket(BUCKET)
        .file(object)
        .getSignedUrl({
          version: 'v4',
          action: method === 'GET' ? 'read' : 'write',
          accessibleAt: now,
          expires: now.getTime() + 15 * MINUTE,
        });
      const ours = await signStorageUrl(TpmSigner.fromKey(key), {
        email: EMAIL,
        bucket: BUCKET,
        object,
        method,
        expiresIn: 900,
        endpoint: gcs.origin,
        now,
      });
      assert.equal(ours, storageUrl);
    }
  });

  describe('CLI', () => {
    const keyArgs = () => ['--key', HANDLE, '--tcti', swtpm.tcti];

    it('sign-blob signs --in FILE as bytes and standard input as text', async () => {
      const blob = path.join(dir, 'blob.bin');
      const bytes = Buffer.from([0, 255, 1, 254, 10]);
      writeFileSync(blob, bytes);
      const fromFile = await cli(['sign-blob', ...keyArgs(), '--in', blob]);
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.ok(rsaVerifies(key, bytes, fromFile.stdout.trim()));
      const fromStdin = await cli(['sign-blob', '--credentials', descriptor], {}, 'string to sign');
      assert.equal(fromStdin.code, 0, fromStdin.stderr);
      assert.ok(rsaVerifies(key, 'string to sign', fromStdin.stdout.trim()));
    });

    it('sign-blob refuses an ES256 key and a missing file', async () => {
      const ecFile = path.join(dir, 'ec.pem');
      writeFileSync(ecFile, ecKey.toPem());
      assertFails(
        await cli(['sign-blob', '--key', ecFile, '--tcti', swtpm.tcti], {}, 'x'),
        1,
        'ERR_JOSE_ALG_NOT_ALLOWED',
      );
      assertFails(await cli(['sign-blob', ...keyArgs(), '--in', path.join(dir, 'absent')]), 1, 'ERR_INVALID_ARGUMENT');
    });

    it('signed-url prints a V4 URL the stand-in GCS serves, for its method and until it expires', async () => {
      const gs = `gs://${BUCKET}/reports/q3 summary.txt`;
      const read = await cli(['signed-url', '--credentials', descriptor, gs, '--endpoint', gcs.origin]);
      assert.equal(read.code, 0, read.stderr);
      const url = read.stdout.trim();
      assert.match(url, /X-Goog-Expires=900&/, 'the default is 15 minutes');
      assert.equal(await (await fetch(url)).text(), 'third quarter');
      await assertRefused(await fetch(url, { method: 'PUT', body: Buffer.from('x') }), 403, 'SignatureDoesNotMatch');

      const put = await cli([
        'signed-url',
        ...keyArgs(),
        '--email',
        EMAIL,
        `gs://${BUCKET}/cli/upload.txt`,
        '--method',
        'put',
        '--expires',
        '2h',
        '--endpoint',
        gcs.origin,
        '--json',
      ]);
      assert.equal(put.code, 0, put.stderr);
      const printed = JSON.parse(put.stdout);
      assert.equal(printed.method, 'PUT');
      assert.ok(Math.abs(Date.parse(printed.expires) - Date.now() - 2 * 60 * MINUTE) < 5000);
      assert.equal((await fetch(printed.url, { method: 'PUT', body: Buffer.from('from the CLI') })).status, 200);
      assert.equal(gcs.objects.get(`${BUCKET}/cli/upload.txt`)?.toString(), 'from the CLI');
      gcs.now = () => Date.now() + 2 * 60 * MINUTE + 5000;
      await assertRefused(await fetch(printed.url, { method: 'PUT', body: Buffer.from('late') }), 403, 'ExpiredToken');

      const real = await cli(['signed-url', '--credentials', descriptor, gs, '--expires', '7d']);
      assert.match(
        real.stdout,
        /^https:\/\/storage\.googleapis\.com\/b87\/reports\/q3%20summary\.txt\?.*X-Goog-Expires=604800&/,
      );
    });

    it('signed-url refuses bad arguments and an ES256 key', async () => {
      const gs = `gs://${BUCKET}/o`;
      for (const args of [
        [gs, '--expires', '8d'],
        [gs, '--expires', '0'],
        [gs, '--expires', 'soon'],
        [gs, '--method', 'POST'],
        ['https://storage.googleapis.com/b/o'],
        [`gs://${BUCKET}/`],
        [gs, gs],
      ]) {
        assertFails(await cli(['signed-url', '--credentials', descriptor, ...args]), 2, 'USAGE');
      }
      const ecFile = path.join(dir, 'ec.pem');
      writeFileSync(ecFile, ecKey.toPem());
      assertFails(
        await cli(['signed-url', '--key', ecFile, '--tcti', swtpm.tcti, '--email', EMAIL, gs]),
        1,
        'ERR_JOSE_ALG_NOT_ALLOWED',
      );
    });
  });
});
