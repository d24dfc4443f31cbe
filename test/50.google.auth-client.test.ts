import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { jwtVerify, SignJWT } from 'jose';
import { PubSub } from 'pubsub5';
import { Storage as Storage7 } from 'storage7';
import { Storage as Storage8 } from 'storage8';

import { TpmSigner, type TpmKey } from '../lib/index.js';
import { CLOUD_PLATFORM_SCOPE, TpmAuthClient } from '../lib/google/index.js';
import { assertFails, cli } from './helpers/cli.js';
import { countingSigner } from './helpers/counting-signer.js';
import { startFakeGoogle, storageOptions, type FakeGoogle } from './helpers/fake-google.js';
import { refusingUrl } from './helpers/http.js';
import { loopbackOnly } from './helpers/loopback-only.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';

const EMAIL = 'sa@p1.iam.gserviceaccount.com';
const now = () => Math.floor(Date.now() / 1000);

describe('50 TpmAuthClient with Google Cloud client libraries', () => {
  const swtpm = useSwtpm();
  const network = loopbackOnly();
  let key: TpmKey;
  let google: FakeGoogle;
  let dir: string;

  before(async () => {
    const tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'RS256', persist: 0x81008001 });
    swtpm.cleanup(() => tpm.evict(0x81008001));
    google = await startFakeGoogle(key.publicKey);
    swtpm.cleanup(() => google.close());
    dir = swtpm.tempDir('google');
  });
  beforeEach(() => {
    google.requests.length = 0;
  });
  /** The descriptor of the suite's key, for the fromServiceAccountFile tests. */
  const descriptorFile = () =>
    writeDescriptor(path.join(dir, 'sa.json'), {
      client_email: EMAIL,
      private_key_id: 'desc-kid',
      project_id: 'p1',
      tpm: { tcti: swtpm.tcti, key: 'handle:0x81008001' },
    });
  after(() => assert.deepEqual(network.attempts, [], 'nothing outside loopback was contacted'));

  const client = (options: Partial<ConstructorParameters<typeof TpmAuthClient>[0]> = {}) =>
    new TpmAuthClient({
      signer: TpmSigner.fromKey(key, { keyId: 'kid-1' }),
      email: EMAIL,
      projectId: 'p1',
      ...options,
    });
  const lastApiCall = () => google.requests.filter((r) => r.path !== '/token').at(-1)!;

  it('Storage 7 (google-auth-library 9) lists buckets with a TPM-signed JWT for the endpoint', async () => {
    const storage = new Storage7(storageOptions(google, client({ quotaProjectId: 'billing-1' })));
    const [buckets] = await storage.getBuckets();
    assert.deepEqual(
      buckets.map((b) => b.name),
      ['b1'],
    );
    const call = lastApiCall();
    assert.equal(call.claims?.iss, EMAIL);
    assert.equal(call.claims?.sub, EMAIL);
    assert.equal(call.claims?.aud, `${google.origin}/`, 'the audience is the service root');
    assert.equal(call.claims?.['scope'], undefined, 'never both aud and scope');
    assert.equal(call.header?.kid, 'kid-1');
    assert.equal(call.headers['x-goog-user-project'], 'billing-1');
  });

  it('Storage 8 (google-auth-library 11), which passes no URL, gets a scope token', async () => {
    const storage = new Storage8(storageOptions(google, client()));
    const [buckets] = await storage.getBuckets();
    assert.equal(buckets.length, 1);
    const call = lastApiCall();
    assert.equal(call.claims?.['scope'], CLOUD_PLATFORM_SCOPE);
    assert.equal(call.claims?.aud, undefined);
  });

  it('Pub/Sub 5 (google-auth-library 10, gax) lists topics over REST', async () => {
    // fallback and protocol are gax options the ClientConfig type does not list.
    const pubsub = new PubSub({
      authClient: client() as never,
      projectId: 'p1',
      apiEndpoint: `127.0.0.1:${google.port}`,
      fallback: 'rest',
      protocol: 'http',
    } as ConstructorParameters<typeof PubSub>[0]);
    try {
      const [topics] = await pubsub.getTopics();
      assert.deepEqual(
        topics.map((t) => t.name),
        ['projects/p1/topics/t1'],
      );
      assert.equal(lastApiCall().claims?.aud, `${google.origin}/`);
    } finally {
      await pubsub.close();
    }
  });

  it('Pub/Sub 5 over gRPC (TLS) sends a JWT for https://pubsub.googleapis.com/', async function () {
    this.timeout(60_000);
    const tlsKey = path.join(dir, 'tls.key');
    const tlsCert = path.join(dir, 'tls.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        tlsKey,
        '-out',
        tlsCert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const pub = path.join(dir, 'tpm-key.pem');
    writeFileSync(pub, key.publicKey.export({ type: 'spki', format: 'pem' }));
    const fixture = fileURLToPath(new URL('./fixtures/pubsub-grpc.ts', import.meta.url));
    const run = spawnSync(process.execPath, ['--import', 'tsx', fixture], {
      encoding: 'utf8',
      timeout: 50_000,
      env: {
        ...process.env,
        GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: tlsCert,
        GOOGLE_CLOUD_PROJECT: 'p1',
        TLS_KEY: tlsKey,
        TLS_CERT: tlsCert,
        TPM_KEY_PUB: pub,
        TPM_KEYREF: 'handle:0x81008001',
        TPM_TCTI: swtpm.tcti,
        SA_EMAIL: EMAIL,
      },
    });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.deepEqual(result.topics, ['projects/p1/topics/over-grpc']);
    assert.deepEqual(result.seen, [{ aud: 'https://pubsub.googleapis.com/', iss: EMAIL }]);
  });

  it('uses the configured scopes instead of an audience, and the service path when there is no URL', async () => {
    const scoped = client({ scopes: ['https://www.googleapis.com/auth/pubsub', 'openid'] });
    const bearer = (await scoped.getRequestHeaders(`${google.origin}/x`)).get('authorization')!;
    const claims = JSON.parse(Buffer.from(bearer.split('.')[1]!, 'base64url').toString());
    assert.equal(claims.scope, 'https://www.googleapis.com/auth/pubsub openid');
    assert.equal(claims.aud, undefined);

    const gax = client();
    gax.defaultServicePath = 'pubsub.googleapis.com';
    const viaPath = (await gax.getRequestHeaders()).get('authorization')!;
    assert.equal(
      JSON.parse(Buffer.from(viaPath.split('.')[1]!, 'base64url').toString()).aud,
      'https://pubsub.googleapis.com/',
    );
    const viaUrl = (await gax.getRequestHeaders('https://pubsub.mtls.googleapis.com/google.pubsub.v1.Publisher')).get(
      'authorization',
    )!;
    assert.equal(
      JSON.parse(Buffer.from(viaUrl.split('.')[1]!, 'base64url').toString()).aud,
      'https://pubsub.googleapis.com/',
    );
  });

  it('returns headers that read as WHATWG Headers and as a plain object', async () => {
    const headers = await client({ quotaProjectId: 'q' }).getRequestHeaders(`${google.origin}/`);
    assert.match(headers.get('authorization')!, /^Bearer /);
    assert.deepEqual(Object.keys(headers).sort(), ['authorization', 'x-goog-user-project']);
    assert.equal(({ ...headers } as unknown as Record<string, string>)['x-goog-user-project'], 'q');
    let seen = 0;
    headers.forEach(() => seen++);
    assert.equal(seen, 2);
  });

  it('signs once per audience for 100 concurrent requests', async () => {
    const signer = countingSigner(TpmSigner.fromKey(key));
    const counted = new TpmAuthClient({ signer, email: EMAIL });
    await Promise.all(Array.from({ length: 100 }, () => counted.getRequestHeaders(`${google.origin}/storage/v1/b`)));
    assert.equal(signer.count, 1);
  });

  it('opens the TPM key itself from keyRef or a descriptor, and closes it', async () => {
    const byRef = new TpmAuthClient({ keyRef: 'handle:0x81008001', tcti: swtpm.tcti, email: EMAIL });
    try {
      const storage = new Storage7({
        authClient: byRef as never,
        apiEndpoint: google.origin,
        useAuthWithCustomEndpoint: true,
        projectId: 'p1',
      });
      await storage.getBuckets();
      assert.equal(lastApiCall().claims?.iss, EMAIL);
    } finally {
      await byRef.close();
    }
    const fromFile = await TpmAuthClient.fromServiceAccountFile(descriptorFile());
    try {
      assert.equal(fromFile.projectId, 'p1');
      const storage = new Storage8({
        authClient: fromFile as never,
        apiEndpoint: google.origin,
        useAuthWithCustomEndpoint: true,
      });
      await storage.getBuckets();
      assert.equal(lastApiCall().header?.kid, 'desc-kid');
    } finally {
      await fromFile.close();
    }
  });

  it('recovers when the key could not be opened at first (a failed open is not cached)', async () => {
    const late = new TpmAuthClient({ keyRef: 'handle:0x81008002', tcti: swtpm.tcti, email: EMAIL });
    try {
      await assert.rejects(late.getRequestHeaders(), { code: 'ERR_TPM_KEY_NOT_FOUND' });
      const tpm = await swtpm.openTpm();
      await tpm.createKey({ alg: 'ES256', persist: 0x81008002 });
      swtpm.cleanup(() => tpm.evict(0x81008002));
      assert.match((await late.getRequestHeaders()).get('authorization')!, /^Bearer ey/);
    } finally {
      await late.close();
    }
  });

  describe('oauth2 and id-token modes against a token endpoint', () => {
    it('oauth2: exchanges a verified assertion for an access token, cached, one exchange at a time', async () => {
      let issued = 0;
      google.onToken = (assertion) => {
        assert.equal(assertion.aud, google.tokenUrl);
        assert.equal(assertion.iss, EMAIL);
        assert.equal(assertion.sub, EMAIL);
        assert.equal(assertion['scope'], CLOUD_PLATFORM_SCOPE);
        assert.ok(assertion.exp! - assertion.iat! <= 3600, 'lifetime at most one hour');
        const token = `ya29.access-${++issued}`;
        google.acceptedTokens.add(token);
        return { body: { access_token: token, expires_in: 3599, token_type: 'Bearer' } };
      };
      const oauth = client({ mode: 'oauth2', tokenUrl: google.tokenUrl });
      const all = await Promise.all(Array.from({ length: 20 }, () => oauth.getRequestHeaders()));
      assert.ok(all.every((h) => h.get('authorization') === 'Bearer ya29.access-1'));
      assert.equal((await oauth.getAccessToken()).token, 'ya29.access-1');
      assert.equal(issued, 1);
      const storage = new Storage8({
        authClient: oauth as never,
        apiEndpoint: google.origin,
        useAuthWithCustomEndpoint: true,
        projectId: 'p1',
      });
      await storage.getBuckets();
      assert.equal(lastApiCall().bearer, 'ya29.access-1');
    });

    it('oauth2: refreshes early when expires_in is short', async () => {
      let issued = 0;
      google.onToken = () => ({ body: { access_token: `short-${++issued}`, expires_in: 60 } });
      const oauth = client({ mode: 'oauth2', tokenUrl: google.tokenUrl });
      await oauth.getAccessToken();
      await oauth.getAccessToken();
      assert.equal(issued, 2);
    });

    it('id-token: sends target_audience and returns the ID token', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const idToken = await new SignJWT({ aud: 'https://my-service.run.app' })
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey);
      google.onToken = (assertion) => {
        assert.equal(assertion['target_audience'], 'https://my-service.run.app');
        assert.equal(assertion['scope'], undefined);
        return { body: { id_token: idToken } };
      };
      const id = client({ mode: 'id-token', tokenUrl: google.tokenUrl, targetAudience: 'https://my-service.run.app' });
      assert.equal((await id.getRequestHeaders()).get('authorization'), `Bearer ${idToken}`);
      const { expiry } = await id.getToken();
      assert.ok(Math.abs(expiry.getTime() / 1000 - (now() + 3600)) < 5);
    });

    const failures: [string, () => void, RegExp][] = [
      [
        'a 400 with an OAuth error body',
        () =>
          (google.onToken = () => ({
            status: 400,
            body: { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' },
          })),
        /HTTP 400 invalid_grant: Invalid JWT Signature\./,
      ],
      ['a 500', () => (google.onToken = () => ({ status: 500, body: 'backend error' })), /HTTP 500 backend error/],
      ['a timeout', () => (google.onToken = () => ({ hang: true })), /no answer within 300 ms/],
      [
        'a body that is not JSON',
        () => (google.onToken = () => ({ status: 200, body: 'not json' })),
        /without a JSON object/,
      ],
      [
        'JSON without a token',
        () => (google.onToken = () => ({ body: { token_type: 'Bearer' } })),
        /has no access_token/,
      ],
    ];
    it('refuses an ID token without an exp, instead of caching it for ever', async () => {
      const unsigned = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
      google.onToken = () => ({ body: { id_token: unsigned({ aud: 'https://a.run.app' }) } });
      const id = client({ mode: 'id-token', tokenUrl: google.tokenUrl, targetAudience: 'https://a.run.app' });
      await assert.rejects(id.getRequestHeaders(), { code: 'ERR_TOKEN_EXCHANGE', message: /not a JWT with an exp/ });
    });

    it('names why a request failed (connection refused), not only "fetch failed"', async () => {
      const oauth = client({ mode: 'oauth2', tokenUrl: await refusingUrl('/token') });
      await assert.rejects(oauth.getRequestHeaders(), {
        code: 'ERR_TOKEN_EXCHANGE',
        message: /fetch failed: connect ECONNREFUSED 127\.0\.0\.1:\d+$/,
      });
    });

    for (const [what, arrange, message] of failures) {
      it(`reports ${what} as ERR_TOKEN_EXCHANGE and does not cache the failure`, async () => {
        arrange();
        const oauth = client({ mode: 'oauth2', tokenUrl: google.tokenUrl, tokenTimeoutMs: 300 });
        await assert.rejects(oauth.getRequestHeaders(), { code: 'ERR_TOKEN_EXCHANGE', message });
        google.onToken = () => ({ body: { access_token: 'recovered', expires_in: 3600 } });
        assert.equal((await oauth.getRequestHeaders()).get('authorization'), 'Bearer recovered');
      });
    }
  });

  describe('close()', () => {
    const url = () => `${google.origin}/storage/v1/b`;

    /** Runs `body` with TpmSigner.open wrapped to keep every signer it opens. */
    async function watchingOpens(body: (opened: TpmSigner[]) => Promise<void>): Promise<void> {
      const open = TpmSigner.open;
      const opened: TpmSigner[] = [];
      TpmSigner.open = async (options) => {
        const signer = await open.call(TpmSigner, options);
        opened.push(signer);
        return signer;
      };
      try {
        await body(opened);
      } finally {
        TpmSigner.open = open;
      }
    }

    /** Every call rejects with ERR_TPM_CLOSED, and none reaches the API. */
    async function assertClosed(closed: TpmAuthClient): Promise<void> {
      const seen = google.requests.length;
      await assert.rejects(closed.getRequestHeaders(url()), { code: 'ERR_TPM_CLOSED' });
      await assert.rejects(closed.getAccessToken(), { code: 'ERR_TPM_CLOSED' });
      await assert.rejects(closed.getToken(url()), { code: 'ERR_TPM_CLOSED' });
      await assert.rejects(closed.request({ url: url() }), { code: 'ERR_TPM_CLOSED' });
      assert.equal(google.requests.length, seen, 'no request was sent');
    }

    /** Signing with a signer whose TPM connection is closed fails as a closed Tpm does. */
    const assertSignerClosed = (signer: TpmSigner | undefined) =>
      assert.rejects(signer!.sign(Buffer.from('after close')), { code: 'ERR_TPM_CLOSED' });

    it('a keyRef client closes the TPM connection it opened and rejects every later call, cached tokens included', () =>
      watchingOpens(async (opened) => {
        const byRef = new TpmAuthClient({ keyRef: 'handle:0x81008001', tcti: swtpm.tcti, email: EMAIL });
        await byRef.getRequestHeaders(url());
        await byRef.getAccessToken();
        await byRef.close();
        assert.equal(opened.length, 1);
        await assertSignerClosed(opened[0]);
        await assertClosed(byRef);
        await byRef.close();
        assert.equal(opened.length, 1, 'a closed client opens no connection');
      }));

    it('a keyRef client closed while its key is being opened still closes that connection', () =>
      watchingOpens(async (opened) => {
        const byRef = new TpmAuthClient({ keyRef: 'handle:0x81008001', tcti: swtpm.tcti, email: EMAIL });
        const first = Promise.allSettled([byRef.getRequestHeaders(url())]);
        await byRef.close();
        const [outcome] = await first;
        if (outcome!.status === 'rejected') assert.equal(outcome!.reason.code, 'ERR_TPM_CLOSED');
        assert.equal(opened.length, 1);
        await assertSignerClosed(opened[0]);
        await assertClosed(byRef);
      }));

    it('a fromServiceAccountFile client closes the signer it opened and rejects every later call', () =>
      watchingOpens(async (opened) => {
        const fromFile = await TpmAuthClient.fromServiceAccountFile(descriptorFile());
        await fromFile.getRequestHeaders(url());
        await fromFile.close();
        assert.equal(opened.length, 1);
        await assertSignerClosed(opened[0]);
        await assertClosed(fromFile);
      }));

    for (const mode of ['jwt-access', 'oauth2', 'id-token'] as const) {
      it(`${mode}: a caller's signer: every call rejects after close(), the signer stays open`, async () => {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const idToken = await new SignJWT({ aud: 'https://a.run.app' })
          .setProtectedHeader({ alg: 'ES256' })
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(privateKey);
        google.onToken = () => ({ body: { access_token: 'ya29.before-close', id_token: idToken, expires_in: 3600 } });
        let closes = 0;
        const signer = Object.assign(countingSigner(TpmSigner.fromKey(key)), { close: async () => void closes++ });
        const given = new TpmAuthClient({
          signer,
          email: EMAIL,
          mode,
          tokenUrl: google.tokenUrl,
          targetAudience: 'https://a.run.app',
        });
        await given.getRequestHeaders(url());
        await given.getAccessToken();
        const signings = signer.count;
        await given.getRequestHeaders(url());
        assert.equal(signer.count, signings, 'the token is cached before close()');

        await given.close();
        await given.close();
        await assertClosed(given);
        assert.equal(signer.count, signings, 'nothing was signed after close()');
        assert.equal(closes, 0, "the caller's signer is the caller's to close");
        assert.ok((await signer.sign(Buffer.from('still open'))).length > 0);
      });
    }
  });

  it('declares only what users may call: the .d.ts has no internal constructor parameter or @internal member', () => {
    const dist = fileURLToPath(new URL('../dist/', import.meta.url));
    const dts = readFileSync(path.join(dist, 'google/tpm-auth-client.d.ts'), 'utf8');
    assert.match(dts, /^\s*constructor\(options: TpmAuthClientOptions\);$/m);
    assert.doesNotMatch(dts, /ownsSigner/);
    for (const file of readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.d.ts'))) {
      assert.doesNotMatch(readFileSync(path.join(dist, file), 'utf8'), /@internal/, file);
    }
  });

  describe('CLI', () => {
    const keyArgs = () => ['--key', '0x81008001', '--email', EMAIL, '--tcti', swtpm.tcti];

    it('token --mode oauth2 and id-token exchange at --token-url', async () => {
      google.onToken = (assertion) => ({
        body: assertion['target_audience'] ? { id_token: 'x.y.z' } : { access_token: 'ya29.cli', expires_in: 3600 },
      });
      const access = await cli(['token', ...keyArgs(), '--mode', 'oauth2', '--token-url', google.tokenUrl]);
      assert.equal(access.code, 0, access.stderr);
      assert.equal(access.stdout.trim(), 'ya29.cli');
      const id = await cli([
        'token',
        ...keyArgs(),
        '--mode',
        'id-token',
        '--target-audience',
        'https://a',
        '--token-url',
        google.tokenUrl,
      ]);
      assertFails(id, 1, 'ERR_TOKEN_EXCHANGE');
      assertFails(await cli(['token', ...keyArgs(), '--mode', 'id-token']), 2, 'USAGE');
    });

    it('print-access-token prints {access_token, expires_in, token_type}', async () => {
      const self = await cli(['print-access-token', ...keyArgs()]);
      assert.equal(self.code, 0, self.stderr);
      const printed = JSON.parse(self.stdout);
      assert.equal(printed.token_type, 'Bearer');
      assert.ok(printed.expires_in > 3500 && printed.expires_in <= 3600);
      const claims = (await jwtVerify(printed.access_token, key.publicKey)).payload;
      assert.equal(claims['scope'], CLOUD_PLATFORM_SCOPE);

      google.onToken = () => ({ body: { access_token: 'ya29.helper', expires_in: 1800 } });
      const oauth = JSON.parse(
        (await cli(['print-access-token', ...keyArgs(), '--mode', 'oauth2', '--token-url', google.tokenUrl])).stdout,
      );
      assert.equal(oauth.access_token, 'ya29.helper');
      assert.ok(oauth.expires_in > 1790 && oauth.expires_in <= 1800);
    });
  });

  it('refuses bad options with ERR_INVALID_ARGUMENT', () => {
    const signer = TpmSigner.fromKey(key);
    for (const options of [
      { signer },
      { signer, email: EMAIL, mode: 'saml' },
      { signer, email: EMAIL, mode: 'id-token' },
      { signer, email: EMAIL, scopes: 's', audience: 'a' },
      { email: EMAIL },
    ]) {
      assert.throws(() => new TpmAuthClient(options as never), { code: 'ERR_INVALID_ARGUMENT' });
    }
  });
});
