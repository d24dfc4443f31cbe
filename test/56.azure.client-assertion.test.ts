/**
 * Microsoft Entra certificate credentials with the TPM key: @azure/identity's
 * ClientAssertionCredential gets tokens from a stand-in that checks every assertion as
 * Entra documents it, and tpm-jwt azure-assertion prints one it accepts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import * as path from 'node:path';

import { ClientAssertionCredential } from '@azure/identity';

import { azureAssertionCallback, azureClientAssertion } from '../lib/azure/index.js';
import { TpmSigner, type Signer, type Tpm, type TpmKey } from '../lib/index.js';
import { assertFails, cli } from './helpers/cli.js';
import { startFakeEntra, type FakeEntra } from './helpers/fake-entra.js';
import { useSwtpm } from './helpers/swtpm.js';

const TENANT = 'contoso.onmicrosoft.com';
const CLIENT = '6f1d0c2e-1111-4a4a-9b9b-222233334444';
const SCOPE = 'https://management.azure.com/.default';

describe('56 Azure: Entra client assertions signed in the TPM', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let key: TpmKey;
  let certificate: string;
  let entra: FakeEntra;
  let agent: Agent;

  /** ClientAssertionCredential as users build it, pointed at the stand-in and trusting its certificate. */
  const credential = (getAssertion: () => Promise<string>, clientId = CLIENT) =>
    new ClientAssertionCredential(TENANT, clientId, getAssertion, {
      authorityHost: entra.authorityHost,
      disableInstanceDiscovery: true,
      additionalPolicies: [
        {
          position: 'perCall',
          policy: { name: 'trust-the-stand-in', sendRequest: (req, next) => next(Object.assign(req, { agent })) },
        },
      ],
    });

  /** What Entra answers a client_credentials request carrying `assertion`. */
  const exchange = (assertion: string) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: CLIENT,
        scope: SCOPE,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString();
      const req = request(`${entra.authorityHost}/${TENANT}/oauth2/v2.0/token`, { method: 'POST', agent }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(body) }));
      });
      req.once('error', reject);
      req.setHeader('content-type', 'application/x-www-form-urlencoded');
      req.end(form);
    });

  before(async () => {
    tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'RS256', persist: 0x81005601 });
    swtpm.cleanup(() => tpm.evict(0x81005601));
    certificate = await key.certificate({ subject: 'tpm-app' });
    entra = await startFakeEntra(swtpm.tempDir('entra'));
    entra.register(TENANT, CLIENT, certificate);
    agent = new Agent({ ca: entra.ca });
  });

  after(async () => {
    agent?.destroy();
    await entra?.close();
  });

  for (const alg of ['PS256', 'RS256'] as const) {
    it(`ClientAssertionCredential gets a token with ${alg} assertions, one per token`, async () => {
      const signer = TpmSigner.fromKey(key, { alg });
      const before = entra.assertions.length;
      const azure = credential(
        azureAssertionCallback(signer, {
          tenantId: TENANT,
          clientId: CLIENT,
          certificate,
          authorityHost: entra.authorityHost,
        }),
      );
      const token = await azure.getToken(SCOPE);
      assert.match(token.token, /^entra-/);
      assert.ok(token.expiresOnTimestamp > Date.now() + 3000_000);
      assert.equal((await azure.getToken(SCOPE)).token, token.token, 'the credential keeps its token');
      const sent = entra.assertions.slice(before);
      assert.equal(sent.length, 1, 'one assertion signed');
      assert.equal(sent[0]!.refused, undefined, sent[0]!.refused);
      const header = JSON.parse(Buffer.from(sent[0]!.assertion.split('.')[0]!, 'base64url').toString());
      assert.equal(header.alg, alg);
    });
  }

  it('the stand-in refuses an assertion for a certificate the app does not hold', async () => {
    const other = await tpm.createKey({ alg: 'RS256' });
    const otherCertificate = await other.certificate({ subject: 'not-registered' });
    const signer = TpmSigner.fromKey(other, { alg: 'PS256' });
    const options = {
      tenantId: TENANT,
      clientId: CLIENT,
      certificate: otherCertificate,
      authorityHost: entra.authorityHost,
    };
    await assert.rejects(credential(azureAssertionCallback(signer, options)).getToken(SCOPE));
    assert.match(entra.assertions.at(-1)!.refused ?? '', /x5t#S256/);
  });

  it('tpm-jwt azure-assertion prints an assertion Entra grants a token for', async () => {
    const file = path.join(swtpm.tempDir('azure-cli'), 'cert.pem');
    writeFileSync(file, certificate);
    const args = ['azure-assertion', '--key', '0x81005601', '--tenant-id', TENANT, '--client-id', CLIENT];
    for (const alg of ['PS256', 'RS256']) {
      const run = await cli([
        ...args,
        '--certificate',
        file,
        '--alg',
        alg,
        '--authority-host',
        entra.authorityHost,
        '--tcti',
        swtpm.tcti,
      ]);
      assert.equal(run.code, 0, run.stderr);
      const answer = await exchange(run.stdout.trim());
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    // AZURE_AUTHORITY_HOST stands for --authority-host, as the Azure SDKs read it.
    const fromEnv = await cli([...args, '--certificate', file, '--tcti', swtpm.tcti], {
      AZURE_AUTHORITY_HOST: entra.authorityHost,
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal((await exchange(fromEnv.stdout.trim())).status, 200);
    // Without either the audience is the public cloud's: this stand-in refuses it.
    const publicCloud = await cli([...args, '--certificate', file, '--tcti', swtpm.tcti]);
    assert.equal(publicCloud.code, 0, publicCloud.stderr);
    assert.match(
      String((await exchange(publicCloud.stdout.trim())).body['error_description']),
      /aud https:\/\/login\.microsoftonline\.com\//,
    );
    assertFails(await cli([...args, '--certificate', file, '--alg', 'ES256', '--tcti', swtpm.tcti]), 2, 'USAGE');
  });

  it("refuses before signing what Entra would: an EC key, another key's certificate, http", async () => {
    const ec = TpmSigner.fromKey(await tpm.createKey({ alg: 'ES256' }));
    const signer = TpmSigner.fromKey(key, { alg: 'PS256' });
    const good = { tenantId: TENANT, clientId: CLIENT, certificate };
    const cases: [Signer, object][] = [
      [ec, good],
      [signer, { ...good, certificate: await (await tpm.createKey({ alg: 'RS256' })).certificate({ subject: 'x' }) }],
      [signer, { ...good, certificate: 'not a certificate' }],
      [signer, { ...good, authorityHost: 'http://127.0.0.1:1' }],
      [signer, { ...good, tenantId: 'a/b' }],
      [signer, { ...good, clientId: '' }],
      [signer, { ...good, lifetime: 3600 }],
    ];
    for (const [s, options] of cases) {
      assert.throws(
        () => azureAssertionCallback(s, options as never),
        { code: 'ERR_INVALID_ARGUMENT' },
        JSON.stringify(options),
      );
      await assert.rejects(azureClientAssertion(s, options as never), { code: 'ERR_INVALID_ARGUMENT' });
    }
  });

  it("says so when a chip's RSA-PSS salt is not the digest's length (Entra would refuse)", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    // What some older TPMs do: the largest salt the modulus leaves room for.
    const maxSalt: Signer & { publicKey: typeof publicKey } = {
      algorithm: 'PS256',
      publicKey,
      sign: async (message) =>
        sign('sha256', message, {
          key: privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
        }),
    };
    const dir = swtpm.tempDir('azure-salt');
    writeFileSync(path.join(dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const selfSigned = execFileSync(
      'openssl',
      ['req', '-x509', '-key', path.join(dir, 'k.pem'), '-subj', '/CN=s', '-days', '1'],
      { encoding: 'utf8' },
    );
    await assert.rejects(
      azureClientAssertion(maxSalt, { tenantId: TENANT, clientId: CLIENT, certificate: selfSigned }),
      {
        code: 'ERR_TPM_UNSUPPORTED',
        message: /RS256/,
      },
    );
  });
});
