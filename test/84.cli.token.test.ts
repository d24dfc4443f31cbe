import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { jwtVerify } from 'jose';

import { jwt, type TpmKey } from '../lib/index.js';
import { assertFails, cli, spawnCli } from './helpers/cli.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const AUD = 'https://pubsub.googleapis.com/';
const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

describe('84 CLI token / verify', () => {
  const swtpm = useSwtpm();
  let dir: string;
  let key: TpmKey;
  let pubkeyFile: string;

  before(async () => {
    dir = swtpm.tempDir('token');
    const tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'ES256', persist: 0x81008001 });
    swtpm.cleanup(() => tpm.evict(0x81008001));
    pubkeyFile = path.join(dir, 'pub.pem');
    writeFileSync(pubkeyFile, key.publicKey.export({ type: 'spki', format: 'pem' }));
  });

  const token = (...args: string[]) => cli(['token', '--tcti', swtpm.tcti, ...args]);

  it('mints an audience token with the TPM key; jose and `verify` accept it (as processes)', async () => {
    const result = await spawnCli([
      'token',
      '--tcti',
      swtpm.tcti,
      '--key',
      '0x81008001',
      '--email',
      EMAIL,
      '--audience',
      AUD,
      '--kid',
      'k1',
      '--claim',
      'n=5',
      '--lifetime',
      '600',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const jwtText = result.stdout.trim();
    const { payload, protectedHeader } = await jwtVerify(jwtText, key.publicKey, { audience: AUD, issuer: EMAIL });
    assert.deepEqual(protectedHeader, { alg: 'ES256', typ: 'JWT', kid: 'k1' });
    assert.equal(payload['n'], 5);
    assert.equal(payload.exp! - payload.iat!, 600);

    const verified = await cli(['verify', '--pubkey', pubkeyFile, '--audience', AUD, jwtText]);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(JSON.parse(verified.stdout).sub, EMAIL);
    const fromStdin = await spawnCli(['verify', '--pubkey', pubkeyFile], {}, `${jwtText}\n`);
    assert.equal(JSON.parse(fromStdin.stdout).aud, AUD);
  });

  it('mints a scope token (no aud) from a tpm_service_account descriptor', async () => {
    const descriptor = writeDescriptor(path.join(dir, 'sa.json'), {
      client_email: EMAIL,
      private_key_id: 'desc-kid',
      tpm: { tcti: swtpm.tcti, key: 'handle:0x81008001' },
    });
    const result = await cli(['token', '--credentials', descriptor, '--scope', SCOPE, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout);
    const claims = await jwt.decode(out.token, { certs: key.publicKey });
    assert.equal(claims['scope'], SCOPE);
    assert.equal(claims.aud, undefined);
    assert.equal(jwt.decodeHeader(out.token).kid, 'desc-kid');
    assert.equal(new Date(out.expiry).getTime(), claims.exp! * 1000);
  });

  it('mints in software from a standard service_account JSON', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const file = path.join(dir, 'std.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'service_account',
        client_email: EMAIL,
        private_key_id: 'std',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      }),
    );
    const result = await cli(['token', '--credentials', file, '--audience', AUD]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await jwt.decode(result.stdout.trim(), { certs: publicKey, audience: AUD })).iss, EMAIL);
  });

  it('verify fails with the decode error code: wrong audience, other key, garbage', async () => {
    const minted = (await token('--key', '0x81008001', '--email', EMAIL, '--audience', AUD)).stdout.trim();
    assertFails(
      await cli(['verify', '--pubkey', pubkeyFile, '--audience', 'https://x/', minted]),
      1,
      'ERR_JWT_CLAIM_VALIDATION_FAILED',
    );
    const other = path.join(dir, 'other.pem');
    writeFileSync(
      other,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }),
    );
    assertFails(await cli(['verify', '--pubkey', other, minted]), 1, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    assertFails(await cli(['verify', '--pubkey', pubkeyFile, 'not.a.jwt']), 1, 'ERR_JWS_INVALID');
  });

  it('usage errors exit 2: audience and scope together, neither, no cert source', async () => {
    assertFails(await token('--key', '0x81008001', '--email', EMAIL, '--audience', AUD, '--scope', SCOPE), 2, 'USAGE');
    assertFails(await token('--key', '0x81008001', '--email', EMAIL), 2, 'USAGE');
    assertFails(await cli(['verify', 'a.b.c']), 2, 'USAGE');
  });
});
