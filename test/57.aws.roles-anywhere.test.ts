/**
 * AWS IAM Roles Anywhere with the TPM key: the key's CSR is issued a certificate under a CA,
 * and CreateSession signed in the TPM (SigV4-X509) gets credentials from a stand-in that
 * checks the signature as AWS describes it: through the Node API and provider, and through
 * the AWS SDK's own credential_process provider running tpm-jwt aws-credentials.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { fromInstanceMetadata } from '@aws-sdk/credential-provider-imds';
import { fromProcess } from '@aws-sdk/credential-provider-process';

import {
  createSession,
  rolesAnywhereCredentials,
  startAwsMetadataServer,
  type RolesAnywhereOptions,
} from '../lib/aws/index.js';
import { TpmSigner, type Signer, type Tpm, type TpmKey } from '../lib/index.js';
import { cliBin } from '../lib/package.js';
import { assertFails, cli, startCliServer } from './helpers/cli.js';
import { overlayEnv } from './helpers/env.js';
import { startFakeRolesAnywhere, type FakeRolesAnywhere } from './helpers/fake-roles-anywhere.js';
import { useSwtpm } from './helpers/swtpm.js';
import { makeTestCa, type TestCa } from './helpers/test-ca.js';

const ACCOUNT = '111122223333';
const ANCHOR = `arn:aws:rolesanywhere:eu-west-1:${ACCOUNT}:trust-anchor/4579702c-0000-4a4a-9b9b-0123456789ab`;
const PROFILE = `arn:aws:rolesanywhere:eu-west-1:${ACCOUNT}:profile/6f4b9b5c-0000-4a4a-9b9b-0123456789ab`;
const ROLE = `arn:aws:iam::${ACCOUNT}:role/device-role`;

describe('57 AWS: IAM Roles Anywhere with the TPM key', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;
  let aws: FakeRolesAnywhere;
  let files: { root: string; intermediate: string; ca: string };
  /** A TPM key of `alg` and its certificate, issued from its CSR by the intermediate CA. */
  let issued: Record<'ES256' | 'RS256', { key: TpmKey; certificate: string; file: string }>;

  let ca: TestCa;

  async function issue(key: TpmKey, name: string) {
    const { pem, file } = await ca.issue(key, name);
    return { key, certificate: pem, file };
  }

  before(async () => {
    dir = swtpm.tempDir('aws');
    ca = makeTestCa(dir);
    tpm = await swtpm.openTpm();
    issued = {
      ES256: await issue(await tpm.createKey({ alg: 'ES256', persist: 0x81005701 }), 'device-ec'),
      RS256: await issue(await tpm.createKey({ alg: 'RS256' }), 'device-rsa'),
    };
    swtpm.cleanup(() => tpm.evict(0x81005701));
    aws = await startFakeRolesAnywhere(dir);
    aws.anchors.set(ANCHOR, readFileSync(ca.root, 'utf8'));
    aws.profiles.add(PROFILE);
    aws.roles.add(ROLE);
    writeFileSync(path.join(dir, 'endpoint-ca.pem'), aws.ca);
    files = {
      root: ca.root,
      intermediate: ca.intermediate,
      ca: path.join(dir, 'endpoint-ca.pem'),
    };
  });

  after(() => aws?.close());

  const options = (certificate: string): RolesAnywhereOptions => ({
    certificate,
    chain: readFileSync(files.intermediate, 'utf8'),
    trustAnchorArn: ANCHOR,
    profileArn: PROFILE,
    roleArn: ROLE,
    endpoint: aws.endpoint,
    ca: aws.ca,
  });

  for (const alg of ['ES256', 'RS256'] as const) {
    it(`CreateSession signed in the TPM with an ${alg} key gets credentials`, async () => {
      const { key, certificate } = issued[alg];
      const credentials = await createSession(TpmSigner.fromKey(key), {
        ...options(certificate),
        durationSeconds: 900,
      });
      assert.equal(credentials.Version, 1);
      assert.equal(credentials.AccessKeyId, aws.sessions.at(-1)!.accessKeyId);
      const lasts = Date.parse(credentials.Expiration) - Date.now();
      assert.ok(lasts > 850_000 && lasts <= 900_000, `lasts ${lasts} ms`);
    });
  }

  it('the provider gives @aws-sdk credentials; the stand-in refuses what AWS would', async () => {
    const { key, certificate } = issued.ES256;
    const provider = rolesAnywhereCredentials(TpmSigner.fromKey(key), options(certificate));
    const credentials = await provider();
    assert.equal(credentials.accessKeyId, aws.sessions.at(-1)!.accessKeyId);
    assert.ok(credentials.expiration instanceof Date);
    const signer = TpmSigner.fromKey(key);
    // A signer that is not the certificate's key (and cannot say so, having no publicKey).
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const impostor: Signer = {
      algorithm: 'ES256',
      sign: async (message) => sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    };
    await assert.rejects(createSession(impostor, options(certificate)), {
      code: 'ERR_TOKEN_EXCHANGE',
      message: /signature does not verify/,
    });
    // Without the intermediate the certificate does not chain to the anchor.
    const { chain: _chain, ...unchained } = options(certificate);
    await assert.rejects(createSession(signer, unchained), {
      code: 'ERR_TOKEN_EXCHANGE',
      message: /chain to the trust anchor/,
    });
    await assert.rejects(
      createSession(signer, { ...options(certificate), roleArn: `arn:aws:iam::${ACCOUNT}:role/other` }),
      {
        code: 'ERR_TOKEN_EXCHANGE',
        message: /HTTP 403.*unknown role/,
      },
    );
  });

  it('refuses before signing: a certificate for another key, a bad ARN, duration, endpoint or algorithm', async () => {
    const signer = TpmSigner.fromKey(issued.ES256.key);
    const good = options(issued.ES256.certificate);
    const bad: Partial<RolesAnywhereOptions>[] = [
      { certificate: issued.RS256.certificate },
      { certificate: 'not a certificate' },
      { trustAnchorArn: 'trust-anchor/x' },
      { durationSeconds: 60 },
      { endpoint: 'http://127.0.0.1:1' },
      { region: 'mars' },
    ];
    const before = aws.sessions.length;
    for (const change of bad) {
      await assert.rejects(
        createSession(signer, { ...good, ...change }),
        { code: 'ERR_INVALID_ARGUMENT' },
        JSON.stringify(change),
      );
    }
    const ps256 = TpmSigner.fromKey(issued.RS256.key, { alg: 'PS256' });
    await assert.rejects(createSession(ps256, options(issued.RS256.certificate)), { code: 'ERR_INVALID_ARGUMENT' });
    assert.equal(aws.sessions.length, before, 'nothing reached Roles Anywhere');
  });

  it("the AWS SDK's credential_process provider runs tpm-jwt aws-credentials", async () => {
    const command = [
      process.execPath,
      cliBin(),
      'aws-credentials',
      ...['--key', '0x81005701', '--certificate', issued.ES256.file, '--chain', files.intermediate],
      ...['--trust-anchor-arn', ANCHOR, '--profile-arn', PROFILE, '--role-arn', ROLE],
      ...['--endpoint', aws.endpoint, '--ca-cert', files.ca, '--tcti', swtpm.tcti],
    ].join(' ');
    const config = path.join(dir, 'aws-config');
    writeFileSync(config, `[profile device]\ncredential_process = ${command}\n`);
    const credentials = await fromProcess({
      profile: 'device',
      configFilepath: config,
      filepath: path.join(dir, 'none'),
    })();
    assert.equal(credentials.accessKeyId, aws.sessions.at(-1)!.accessKeyId);
    assert.ok(credentials.sessionToken && credentials.expiration instanceof Date);

    const run = await cli([
      'aws-credentials',
      '--key',
      '0x81005701',
      '--certificate',
      issued.ES256.file,
      '--trust-anchor-arn',
      ANCHOR,
      '--profile-arn',
      PROFILE,
      '--role-arn',
      ROLE,
      '--endpoint',
      aws.endpoint,
      '--ca-cert',
      files.ca,
      '--tcti',
      swtpm.tcti,
    ]);
    assertFails(run, 1, 'ERR_TOKEN_EXCHANGE');
    assertFails(
      await cli(['aws-credentials', '--key', '0x81005701', '--certificate', issued.ES256.file, '--tcti', swtpm.tcti]),
      2,
      'USAGE',
    );
  });

  it('a key with an auth value signs with --auth-env, as for Google, and only with it', async () => {
    const key = await tpm.createKey({ alg: 'ES256', auth: 'device pin', persist: 0x81005702 });
    swtpm.cleanup(() => tpm.evict(0x81005702));
    const { file } = await issue(key, 'device-pin');
    const args = ['aws-credentials', '--key', '0x81005702', '--certificate', file, '--chain', files.intermediate];
    args.push('--trust-anchor-arn', ANCHOR, '--profile-arn', PROFILE, '--role-arn', ROLE);
    args.push('--endpoint', aws.endpoint, '--ca-cert', files.ca, '--tcti', swtpm.tcti);
    const run = await cli([...args, '--auth-env', 'DEVICE_PIN'], { DEVICE_PIN: 'device pin' });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).AccessKeyId, aws.sessions.at(-1)!.accessKeyId);
    assertFails(await cli([...args, '--auth-env', 'DEVICE_PIN'], { DEVICE_PIN: 'wrong' }), 1, 'ERR_TPM_AUTH_FAIL');
  });

  describe('the IMDSv2 endpoint', () => {
    it("the SDK's instance-metadata provider gets the credentials; one CreateSession serves them all", async () => {
      const { key, certificate } = issued.ES256;
      const server = await startAwsMetadataServer(TpmSigner.fromKey(key), options(certificate), { port: 0 });
      const restore = overlayEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: server.url });
      try {
        const before = aws.sessions.length;
        const first = await fromInstanceMetadata()();
        const second = await fromInstanceMetadata()();
        assert.equal(first.accessKeyId, aws.sessions.at(-1)!.accessKeyId);
        assert.equal(second.accessKeyId, first.accessKeyId);
        assert.equal(aws.sessions.length, before + 1, 'one CreateSession');
        assert.ok(first.sessionToken && first.expiration instanceof Date);

        // IMDSv2's rules: a session token first, none through a proxy.
        const credentialsUrl = `${server.url}/latest/meta-data/iam/security-credentials/device-role`;
        assert.equal((await fetch(credentialsUrl)).status, 401);
        assert.equal((await fetch(credentialsUrl, { headers: { 'x-aws-ec2-metadata-token': 'forged' } })).status, 401);
        const put = (headers: Record<string, string>) =>
          fetch(`${server.url}/latest/api/token`, { method: 'PUT', headers });
        assert.equal((await put({})).status, 400);
        const rebound = await new Promise<number>((resolve, reject) => {
          const req = httpRequest(
            `${server.url}/latest/api/token`,
            { method: 'PUT', headers: { host: 'attacker.example', 'x-aws-ec2-metadata-token-ttl-seconds': '60' } },
            (res) => resolve(res.statusCode!),
          );
          req.once('error', reject);
          req.end();
        });
        assert.equal(rebound, 403, 'a Host that is not the server (DNS rebinding) is refused');
        // Any header a proxy adds, not only X-Forwarded-For.
        for (const proxy of [{ 'x-forwarded-for': '1.2.3.4' }, { via: '1.1 proxy' }, { forwarded: 'for=1.2.3.4' }]) {
          assert.equal((await put({ 'x-aws-ec2-metadata-token-ttl-seconds': '60', ...proxy })).status, 403);
        }
        const token = await (await put({ 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).text();
        const listed = await fetch(`${server.url}/latest/meta-data/iam/security-credentials/`, {
          headers: { 'x-aws-ec2-metadata-token': token },
        });
        assert.equal(await listed.text(), 'device-role');
        const other = await fetch(`${server.url}/latest/meta-data/iam/security-credentials/other-role`, {
          headers: { 'x-aws-ec2-metadata-token': token },
        });
        assert.equal(other.status, 404);
      } finally {
        restore();
        await server.close();
      }
    });

    it('listens on loopback only', async () => {
      const signer = TpmSigner.fromKey(issued.ES256.key);
      await assert.rejects(
        startAwsMetadataServer(signer, options(issued.ES256.certificate), { host: '0.0.0.0', port: 0 }),
        {
          code: 'ERR_INVALID_ARGUMENT',
        },
      );
    });

    it('tpm-jwt serve-aws-metadata prints the endpoint to export and serves until signalled', async () => {
      const server = await startCliServer(
        [
          'serve-aws-metadata',
          ...['--key', '0x81005701', '--certificate', issued.ES256.file, '--chain', files.intermediate],
          ...['--trust-anchor-arn', ANCHOR, '--profile-arn', PROFILE, '--role-arn', ROLE],
          ...['--ca-cert', files.ca, '--listen', '127.0.0.1:0', '--tcti', swtpm.tcti],
          // The endpoint as the AWS SDKs take it, from the environment.
        ],
        { AWS_ENDPOINT_URL_ROLESANYWHERE: aws.endpoint },
      );
      try {
        const match = /^export AWS_EC2_METADATA_SERVICE_ENDPOINT=(http:\/\/127\.0\.0\.1:\d+)$/.exec(server.line);
        assert.ok(match, server.line);
        const restore = overlayEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: match[1]! });
        try {
          assert.equal((await fromInstanceMetadata()()).accessKeyId, aws.sessions.at(-1)!.accessKeyId);
        } finally {
          restore();
        }
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  });
});
