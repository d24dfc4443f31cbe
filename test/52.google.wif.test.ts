/**
 * Keyless Workload Identity Federation: google-auth-library's own ExternalAccountClient
 * runs `tpm-jwt wif-token` as the executable of a credential configuration, and a
 * stand-in STS verifies the TPM-signed subject token against the provider's JWKS.
 * Read in-process, a configuration names only Google's endpoints unless the user opts
 * in (TPM_JWT_ALLOW_ANY_ENDPOINT=1), as the tests that point one at the stand-in do.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import * as path from 'node:path';

import { ExternalAccountClient } from 'google-auth-library';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { Storage as Storage7 } from 'storage7';
import { Storage as Storage8 } from 'storage8';

import { TpmIdentityPoolClient, tpmSubjectTokenSupplier } from '../lib/google/index.js';
import { federatedAccessToken, openWifIdentity, readWifConfiguration } from '../lib/google/wif-client.js';
import { parseWifTokenCommand } from '../lib/google/wif-config.js';
import { mintSubjectToken } from '../lib/google/wif-subject-token.js';
import { jwkThumbprint, jwt, publicJwk, SoftwareSigner, TpmSigner, type TpmKey } from '../lib/index.js';
import { cliBin } from '../lib/package.js';
import { assertFails, cli } from './helpers/cli.js';
import { countingSigner } from './helpers/counting-signer.js';
import { startFakeGoogle, storageOptions } from './helpers/fake-google.js';
import { startFakeSts, type FakeSts } from './helpers/fake-sts.js';
import { refusingUrl } from './helpers/http.js';
import { loopbackOnly } from './helpers/loopback-only.js';
import { useSwtpm } from './helpers/swtpm.js';
import { configurationReaders } from './helpers/configuration-readers.js';
import { overlayEnv } from './helpers/env.js';

const CLI = cliBin();
// google-auth-library 9, as @google-cloud/storage 7 bundles it.
const { ExternalAccountClient: ExternalAccountClient9 } = createRequire(
  createRequire(import.meta.url).resolve('storage7'),
)('google-auth-library') as typeof import('google-auth-library');
const AUDIENCE =
  '//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/devices/providers/tpm-keys';
const ISSUER = 'https://devices.example.com';

describe('52 Workload Identity Federation with the TPM key', () => {
  const swtpm = useSwtpm();
  let key: TpmKey;
  let sts: FakeSts;
  let dir: string;
  let restoreEnv: (() => void) | undefined;

  before(async () => {
    const tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'ES256', persist: 0x81008601 });
    swtpm.cleanup(() => tpm.evict(0x81008601));
    sts = await startFakeSts({
      audience: AUDIENCE,
      issuer: ISSUER,
      jwks: { keys: [publicJwk(key.publicKey, 'ES256')] },
    });
    swtpm.cleanup(() => sts.close());
    dir = swtpm.tempDir('wif');
    restoreEnv = overlayEnv({ GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES: '1' });
  });
  after(() => restoreEnv?.());

  /** A credential configuration as gcloud create-cred-config writes it, run by the libraries. */
  function credentialConfig(name: string, tcti: string) {
    const outputFile = path.join(dir, `${name}.json`);
    const command = [process.execPath, CLI, 'wif-token', '--key', '0x81008601', '--issuer', ISSUER, '--tcti', tcti];
    return {
      outputFile,
      config: {
        type: 'external_account',
        audience: AUDIENCE,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: sts.tokenUrl,
        credential_source: {
          executable: { command: command.join(' '), timeout_millis: 30_000, output_file: outputFile },
        },
      },
    };
  }

  it('google-auth-library runs wif-token and exchanges its TPM-signed token at STS', async () => {
    const { config, outputFile } = credentialConfig('ok', swtpm.tcti);
    const client = ExternalAccountClient.fromJSON(config as never)!;
    const { token } = await client.getAccessToken();
    assert.ok(token && sts.issued.has(token), 'an access token from STS');
    const claims = sts.exchanged.at(-1)!;
    const thumbprint = jwkThumbprint(key.publicKey.export({ format: 'jwk' }));
    assert.equal(claims.sub, thumbprint, 'sub: the key thumbprint');
    assert.equal(jwt.decodeHeader(sts.subjectTokens.at(-1)!).kid, publicJwk(key.publicKey, 'ES256').kid);
    assert.equal(claims.exp! - claims.iat!, 3600);
    assert.equal(statSync(outputFile).mode & 0o777, 0o600);

    // A second client reads the fresh output file: no new subprocess, the same token.
    const again = ExternalAccountClient.fromJSON(config as never)!;
    await again.getAccessToken();
    assert.equal(sts.exchanged.at(-1)!.jti, claims.jti, 'the output file served the second exchange');

    // Storage 7 and 8 list buckets with the federated token, each through the
    // google-auth-library major it bundles (9 and 10), as an application would.
    const google = await startFakeGoogle(key.publicKey);
    try {
      for (const [Storage, Client] of [
        [Storage7, ExternalAccountClient9],
        [Storage8, ExternalAccountClient],
      ] as const) {
        const client = Client.fromJSON(config as never)!;
        google.acceptedTokens.add((await client.getAccessToken()).token!);
        const storage = new Storage(storageOptions(google, client));
        const [buckets] = await storage.getBuckets();
        assert.deepEqual(
          buckets.map((b) => b.name),
          ['b1'],
        );
      }
    } finally {
      await google.close();
    }
    assert.equal(sts.exchanged.at(-1)!.jti, claims.jti, 'still the one subject token, from the output file');
  });

  it('prints the executable response, and writes nothing to the output file on failure', async () => {
    const env = {
      GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE: AUDIENCE,
      GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE: path.join(dir, 'out.json'),
    };
    const ok = await cli(['wif-token', '--key', '0x81008601', '--issuer', ISSUER, '--tcti', swtpm.tcti], env);
    assert.equal(ok.code, 0, ok.stderr);
    const response = JSON.parse(ok.stdout);
    assert.equal(response.success, true);
    assert.equal(response.token_type, 'urn:ietf:params:oauth:token-type:id_token');
    assert.deepEqual(JSON.parse(readFileSync(env.GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE, 'utf8')), response);

    const failed = path.join(dir, 'failed.json');
    for (const [args, code, audience] of [
      [['--key', '0x81008601', '--tcti', 'swtpm:host=127.0.0.1,port=1'], 'ERR_TPM_CONNECTION', AUDIENCE],
      [['--key', '0x81008699', '--tcti', swtpm.tcti], 'ERR_TPM_KEY_NOT_FOUND', AUDIENCE],
      [['--key', '0x81008601', '--tcti', swtpm.tcti], 'ERR_INVALID_ARGUMENT', 'not-a-provider'],
    ] as const) {
      const result = await cli(['wif-token', ...args, '--issuer', ISSUER], {
        GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE: audience,
        GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE: failed,
      });
      assert.equal(result.code, 1);
      assert.deepEqual(JSON.parse(result.stdout), {
        version: 1,
        success: false,
        code,
        message: JSON.parse(result.stdout).message,
      });
      assert.ok(!existsSync(failed), 'nothing written on failure');
    }
    // An output file that cannot be written is a failure with a code too.
    const unwritable = await cli(['wif-token', '--key', '0x81008601', '--issuer', ISSUER, '--tcti', swtpm.tcti], {
      GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE: AUDIENCE,
      GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE: path.join(dir, 'no-such-dir', 'out.json'),
    });
    assert.equal(unwritable.code, 1);
    assert.equal(JSON.parse(unwritable.stdout).code, 'ERR_INVALID_ARGUMENT');
  });

  it('the library gets our failure (TPM down), with its code, and no hang', async () => {
    const { config } = credentialConfig('down', 'swtpm:host=127.0.0.1,port=1');
    const client = ExternalAccountClient.fromJSON(config as never)!;
    await assert.rejects(client.getAccessToken(), /ERR_TPM_CONNECTION/);
  });

  it('the in-process supplier signs once per token lifetime, for any number of concurrent callers', async () => {
    const signer = countingSigner(TpmSigner.fromKey(key));
    const supplier = tpmSubjectTokenSupplier({ signer, issuer: ISSUER, subject: 'device-1' });
    const context = { audience: AUDIENCE, subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt' } as never;
    const tokens = await Promise.all(Array.from({ length: 20 }, () => supplier.getSubjectToken(context)));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(signer.count, 1);
    assert.equal(jwt.decodeHeader(tokens[0]!).alg, 'ES256');
    const claims = await jwt.decode(tokens[0]!, { certs: key.publicKey, audience: `https:${AUDIENCE}` });
    assert.equal(claims.sub, 'device-1');
  });

  it('refuses a PS256 signer: STS verifies RS256 and ES256 subject tokens only', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const options = { issuer: ISSUER, audience: `https:${AUDIENCE}`, subject: 'device-1' };
    await assert.rejects(mintSubjectToken(SoftwareSigner.fromPem(pem, 'k', 'PS256'), options), {
      code: 'ERR_INVALID_ARGUMENT',
      message: /RS256 and ES256/,
    });
    const rs = await mintSubjectToken(SoftwareSigner.fromPem(pem, 'k', 'RS256'), options);
    assert.equal(jwt.decodeHeader(rs.token).alg, 'RS256');
  });

  describe('wif-config', () => {
    const base = ['--key', '0x81008601', '--project-number', '123456', '--pool', 'devices', '--provider', 'tpm-keys'];
    // What npm installs as the tpm-jwt command: an executable that runs the CLI.
    let executable: string;
    before(() => {
      executable = path.join(dir, 'tpm-jwt');
      writeFileSync(executable, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    });
    const args = (out: string) => [
      'wif-config',
      ...base,
      '--issuer',
      ISSUER,
      '--out-dir',
      out,
      '--token-url',
      sts.tokenUrl,
      '--executable',
      executable,
      '--tcti',
      swtpm.tcti,
    ];

    it('writes the JWKS and a credential configuration that google-auth-library uses as is', async () => {
      const out = path.join(dir, 'config');
      mkdirSync(out);
      const result = await cli(args(out));
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        /gcloud iam workload-identity-pools providers create-oidc tpm-keys .*--jwk-json-path=/,
      );
      assert.match(result.stdout, /--attribute-mapping=google\.subject=assertion\.sub/);
      const jwks = JSON.parse(readFileSync(path.join(out, 'jwks.json'), 'utf8'));
      assert.deepEqual(jwks, { keys: [publicJwk(key.publicKey, 'ES256')] }, 'the JWKS STS was given');
      const config = JSON.parse(readFileSync(path.join(out, 'credential-configuration.json'), 'utf8'));
      assert.equal(config.audience, AUDIENCE);
      assert.equal(config.subject_token_type, 'urn:ietf:params:oauth:token-type:jwt');
      const client = ExternalAccountClient.fromJSON(config)!;
      const { token } = await client.getAccessToken();
      assert.ok(token && sts.issued.has(token));
      // Existing files are kept unless --force.
      assertFails(await cli(args(out)), 1, 'ERR_INVALID_ARGUMENT');
      assert.equal((await cli([...args(out), '--force'])).code, 0);
    });

    it('makes an --out-dir that does not exist yet, for this user only', async () => {
      const out = path.join(dir, 'made', 'by', 'wif-config');
      const result = await cli(args(out));
      assert.equal(result.code, 0, result.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o700);
      assert.ok(statSync(path.join(out, 'credential-configuration.json')).isFile());
    });

    it('with --service-account, the libraries impersonate it with the federated token', async () => {
      const out = path.join(dir, 'impersonate');
      mkdirSync(out);
      const email = 'runner@p.iam.gserviceaccount.com';
      assert.equal((await cli([...args(out), '--service-account', email])).code, 0);
      const config = JSON.parse(readFileSync(path.join(out, 'credential-configuration.json'), 'utf8'));
      assert.equal(
        config.service_account_impersonation_url,
        `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${email}:generateAccessToken`,
      );
      // Pointed at the stand-in, the rest of the file as written.
      config.service_account_impersonation_url = config.service_account_impersonation_url.replace(
        'https://iamcredentials.googleapis.com',
        sts.iamUrl,
      );
      const { token } = await ExternalAccountClient.fromJSON(config)!.getAccessToken();
      assert.ok(token?.startsWith('sa.') && sts.issued.has(token));
      assert.deepEqual(sts.impersonated.slice(-1), [email]);
    });

    it('--no-encrypt is carried into the command the libraries run, and only when given', async () => {
      const command = (out: string) =>
        JSON.parse(readFileSync(path.join(out, 'credential-configuration.json'), 'utf8')).credential_source.executable
          .command as string;
      const plain = path.join(dir, 'encrypted');
      mkdirSync(plain);
      assert.equal((await cli(args(plain))).code, 0);
      assert.doesNotMatch(command(plain), /--no-encrypt/);
      assert.equal(parseWifTokenCommand(command(plain)).encrypt, undefined);

      const out = path.join(dir, 'no-encrypt');
      mkdirSync(out);
      const written = await cli([...args(out), '--no-encrypt']);
      assert.equal(written.code, 0, written.stderr);
      assert.match(command(out), / --tcti \S+ --no-encrypt$/);
      assert.equal(parseWifTokenCommand(command(out)).encrypt, false);
      // The library runs it as written: the subprocess signs with encryption off.
      const config = JSON.parse(readFileSync(path.join(out, 'credential-configuration.json'), 'utf8'));
      const { token } = await ExternalAccountClient.fromJSON(config)!.getAccessToken();
      assert.ok(token && sts.issued.has(token));
    });

    it('tpm-jwt/google signs the subject tokens in-process; Storage lists buckets with it', async () => {
      const out = path.join(dir, 'in-process');
      mkdirSync(out);
      // An executable that fails: a subprocess would make the exchange fail.
      const refuse = path.join(dir, 'refuse');
      writeFileSync(refuse, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      const written = await cli([...args(out), '--executable', refuse]);
      assert.equal(written.code, 0, written.stderr);
      // The file names the stand-in STS (--token-url): read from a file, that needs the opt-in.
      const restore = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' });
      let client: TpmIdentityPoolClient;
      try {
        client = await TpmIdentityPoolClient.fromCredentialConfiguration(
          path.join(out, 'credential-configuration.json'),
        );
      } finally {
        restore();
      }
      try {
        const google = await startFakeGoogle(key.publicKey);
        try {
          const before = sts.exchanged.length;
          const { token } = await client.getAccessToken();
          assert.ok(token && sts.issued.has(token));
          google.acceptedTokens.add(token);
          const storage = new Storage8(storageOptions(google, client));
          const [buckets] = await storage.getBuckets();
          assert.deepEqual(
            buckets.map((b) => b.name),
            ['b1'],
          );
          assert.equal(sts.exchanged.length, before + 1, 'one exchange, its token reused');
        } finally {
          await google.close();
        }
      } finally {
        await client.close();
      }
    });

    it('in-process reads every wif-token flag the subprocess takes, and holds the key to the file rules', async () => {
      assert.deepEqual(
        parseWifTokenCommand(
          'node main.js wif-token --key=k.pem --issuer https://i --subject s --tcti swtpm: --kid K ' +
            '--auth-env PIN --pcrs sha256:16 --lifetime 600 --audience https://a --no-encrypt',
        ),
        {
          issuer: 'https://i',
          key: 'k.pem',
          subject: 's',
          tcti: 'swtpm:',
          kid: 'K',
          authEnv: 'PIN',
          pcrs: 'sha256:16',
          lifetime: 600,
          audience: 'https://a',
          encrypt: false,
        },
      );
      for (const command of [
        'tpm-jwt wif-token --key 0x81000001 --issuer https://i --output-file x',
        'tpm-jwt wif-token --key 0x81000001',
        'tpm-jwt wif-token --key 0x81000001 --credentials d.json --issuer https://i',
        'tpm-jwt wif-token --key 0x81000001 --issuer https://i --lifetime 1h',
      ]) {
        assert.throws(() => parseWifTokenCommand(command), { code: 'ERR_INVALID_ARGUMENT' }, command);
      }

      // The key's kid, as the subprocess would sign it. (Nothing here is exchanged: the
      // configurations name Google's STS by default.)
      const own = path.join(dir, 'kid');
      mkdirSync(own);
      const configuration = (name: string, flags: string) => {
        const file = path.join(own, `${name}.json`);
        const command = `tpm-jwt wif-token ${flags} --issuer ${ISSUER} --tcti ${swtpm.tcti}`;
        const source = { executable: { command } };
        writeFileSync(
          file,
          JSON.stringify({ type: 'external_account', audience: AUDIENCE, credential_source: source }),
        );
        return file;
      };
      const parsed = await readWifConfiguration(
        configuration('kid', '--key 0x81008601 --kid custom-kid --lifetime 600'),
      );
      const identity = await openWifIdentity(parsed);
      try {
        const subjectToken = await identity.supplier.getSubjectToken({
          audience: AUDIENCE,
        } as never);
        assert.equal(decodeProtectedHeader(subjectToken).kid, 'custom-kid');
        const { iat, exp } = decodeJwt(subjectToken);
        assert.equal(exp! - iat!, 600);
      } finally {
        await identity.close();
      }
      // A relative key file is found beside the configuration, and must be a regular file.
      writeFileSync(path.join(own, 'key.pem'), (await (await swtpm.openTpm()).createKey({ alg: 'ES256' })).toPem());
      await (
        await TpmIdentityPoolClient.fromCredentialConfiguration(configuration('relative', '--key key.pem'))
      ).close();
      mkdirSync(path.join(own, 'dir.pem'));
      for (const keyArg of ['dir.pem', 'missing.pem', '/dev/zero']) {
        await assert.rejects(
          TpmIdentityPoolClient.fromCredentialConfiguration(configuration('bad', `--key ${keyArg}`)),
          { code: 'ERR_KEY_FILE_INVALID' },
          keyArg,
        );
      }
    });

    it('refuses IDs Google would refuse, and paths the libraries would split', async () => {
      const out = path.join(dir, 'refused');
      for (const [flag, value] of [
        ['--pool', 'abc'],
        ['--pool', 'gcp-devices'],
        ['--provider', 'Upper-Case'],
        ['--provider', 'x'.repeat(33)],
        ['--project-number', 'my-project'],
        ['--issuer', 'http://devices.example.com'],
        ['--out-dir', path.join(dir, 'with space')],
      ] as const) {
        const result = await cli([...args(out), flag, value]);
        assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
      }
    });
  });

  describe('endpoints a credential configuration names', () => {
    // Nothing may reach Google (or any host but this one) from here.
    const network = loopbackOnly();
    const EMAIL = 'runner@p.iam.gserviceaccount.com';
    const GOOGLE_STS = 'https://sts.googleapis.com/v1/token';
    const GOOGLE_IMPERSONATION =
      'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/' + `${EMAIL}:generateAccessToken`;
    let standIn: { url: string; requests: string[]; close(): Promise<void> };
    let own: string;
    let restoreEnv: () => void;
    before(async () => {
      standIn = await recordingServer();
      own = path.join(dir, 'endpoints');
      mkdirSync(own);
      // Whatever the environment says: each refusal is the rule's own.
      restoreEnv = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '', GOOGLE_CLOUD_UNIVERSE_DOMAIN: '' });
    });
    after(async () => {
      restoreEnv();
      await standIn.close();
    });
    afterEach(() => assert.deepEqual(network.attempts, [], 'no connection left this machine'));

    let count = 0;
    /** A configuration that runs wif-token on the suite key, with `fields` added. */
    const configuration = (fields: Record<string, unknown>): string => {
      const file = path.join(own, `c${++count}.json`);
      const command = `tpm-jwt wif-token --key 0x81008601 --issuer ${ISSUER} --tcti ${swtpm.tcti}`;
      const source = { executable: { command } };
      writeFileSync(
        file,
        JSON.stringify({ type: 'external_account', audience: AUDIENCE, ...fields, credential_source: source }),
      );
      return file;
    };
    // Every in-process reader of credential configurations, as a user reaches it.
    const readers = configurationReaders(EMAIL);

    it('refuses a token_url that is not Google STS for its universe, before any request', async () => {
      const refused: [string, unknown][] = [
        ['the stand-in', `${standIn.url}/v1/token`],
        ['another host', 'https://sts.example.com/v1/token'],
        ['plain http', 'http://sts.googleapis.com/v1/token'],
        ['a suffix', 'https://sts.googleapis.com.evil.example/v1/token'],
        ['user info', 'https://sts.googleapis.com@evil.example/v1/token'],
        ['credentials', 'https://user:pw@sts.googleapis.com/v1/token'],
        ['a port', 'https://sts.googleapis.com:8443/v1/token'],
        ['a query', 'https://sts.googleapis.com/v1/token?next=https://evil.example'],
        ['another path', 'https://sts.googleapis.com/v1/other'],
        ['another service', 'https://iamcredentials.googleapis.com/v1/token'],
        ['not a URL', 'sts.googleapis.com/v1/token'],
        ['not a string', 42],
      ];
      for (const [what, tokenUrl] of refused) {
        for (const [reader, open] of readers) {
          await assert.rejects(
            open(configuration({ token_url: tokenUrl })),
            { code: 'ERR_INVALID_ARGUMENT', message: /token_url .*TPM_JWT_ALLOW_ANY_ENDPOINT=1/ },
            `${reader}: ${what}`,
          );
        }
      }
      // A universe the environment does not name: the file would choose where tokens go.
      await assert.rejects(
        readWifConfiguration(
          configuration({ token_url: 'https://sts.evil.example/v1/token', universe_domain: 'evil.example' }),
        ),
        { code: 'ERR_INVALID_ARGUMENT', message: /set GOOGLE_CLOUD_UNIVERSE_DOMAIN=evil\.example to trust/ },
      );
      // Google's own for another universe is not this file's.
      const restore = overlayEnv({ GOOGLE_CLOUD_UNIVERSE_DOMAIN: 'example.net' });
      try {
        await assert.rejects(
          readWifConfiguration(configuration({ token_url: GOOGLE_STS, universe_domain: 'example.net' })),
          { code: 'ERR_INVALID_ARGUMENT', message: /universe example\.net/ },
        );
      } finally {
        restore();
      }
      for (const universe of ['evil.example/x?', '@evil.example', 'localhost', 7]) {
        await assert.rejects(
          readWifConfiguration(configuration({ universe_domain: universe })),
          { code: 'ERR_INVALID_ARGUMENT' },
          String(universe),
        );
      }
      assert.deepEqual(standIn.requests, [], 'the stand-in saw no request');
    });

    it("refuses a foreign impersonation URL beside Google's STS: the federated token would go there", async () => {
      for (const impersonation of [
        `${standIn.url}/v1/projects/-/serviceAccounts/${EMAIL}:generateAccessToken`,
        `https://evil.example/v1/projects/-/serviceAccounts/${EMAIL}:generateAccessToken`,
        `https://sts.googleapis.com/v1/projects/-/serviceAccounts/${EMAIL}:generateAccessToken`,
        `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/${EMAIL}:signJwt`,
      ]) {
        for (const [reader, open] of readers) {
          await assert.rejects(
            open(configuration({ token_url: GOOGLE_STS, service_account_impersonation_url: impersonation })),
            {
              code: 'ERR_INVALID_ARGUMENT',
              message: /service_account_impersonation_url .*TPM_JWT_ALLOW_ANY_ENDPOINT=1/,
            },
            `${reader}: ${impersonation}`,
          );
        }
      }
      assert.deepEqual(standIn.requests, [], 'the stand-in saw no request');
    });

    it("accepts Google's endpoints for the file's universe", async () => {
      for (const fields of [
        {},
        { token_url: GOOGLE_STS, service_account_impersonation_url: GOOGLE_IMPERSONATION },
        { token_url: 'https://sts.mtls.googleapis.com/v1/token' },
        { token_url: 'https://STS.googleapis.com/v1/token' },
        {
          universe_domain: 'example.net',
          token_url: 'https://sts.example.net/v1/token',
          service_account_impersonation_url: GOOGLE_IMPERSONATION.replace('googleapis.com', 'example.net'),
        },
      ]) {
        // Another universe once the environment names it, as Google's client libraries read it.
        const restore = overlayEnv({ GOOGLE_CLOUD_UNIVERSE_DOMAIN: 'example.net' });
        try {
          const read = await readWifConfiguration(configuration(fields));
          assert.equal(read.options.token_url, (fields as { token_url?: string }).token_url, JSON.stringify(fields));
        } finally {
          restore();
        }
      }
      const client = await TpmIdentityPoolClient.fromCredentialConfiguration(
        configuration({ token_url: GOOGLE_STS, service_account_impersonation_url: GOOGLE_IMPERSONATION }),
      );
      await client.close();
    });

    it('TPM_JWT_ALLOW_ANY_ENDPOINT=1 lets a file the user trusts name the stand-ins', async () => {
      const file = configuration({
        token_url: sts.tokenUrl,
        service_account_impersonation_url: `${sts.iamUrl}/v1/projects/-/serviceAccounts/${EMAIL}:generateAccessToken`,
      });
      await assert.rejects(TpmIdentityPoolClient.fromCredentialConfiguration(file), { code: 'ERR_INVALID_ARGUMENT' });
      const exchanged = sts.exchanged.length;
      const client = await trustedClient(file);
      try {
        const { token } = await client.getAccessToken();
        assert.ok(token?.startsWith('sa.') && sts.issued.has(token));
        assert.equal(sts.exchanged.length, exchanged + 1);
        assert.deepEqual(sts.impersonated.slice(-1), [EMAIL]);
      } finally {
        await client.close();
      }
    });

    it('names why an exchange failed (STS refuses connections), not only "fetch failed"', async () => {
      const client = await trustedClient(configuration({ token_url: await refusingUrl('/v1/token') }));
      try {
        await assert.rejects(federatedAccessToken(client), {
          code: 'ERR_TOKEN_EXCHANGE',
          message: /connect ECONNREFUSED 127\.0\.0\.1:\d+/,
        });
      } finally {
        await client.close();
      }
    });
  });
});

/** A client for a configuration the user trusts to name any endpoint (TPM_JWT_ALLOW_ANY_ENDPOINT=1). */
async function trustedClient(file: string): Promise<TpmIdentityPoolClient> {
  const restore = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' });
  try {
    return await TpmIdentityPoolClient.fromCredentialConfiguration(file);
  } finally {
    restore();
  }
}

/** An HTTP server on loopback that records every request and answers 404. */
async function recordingServer(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
