import assert from 'node:assert/strict';
import { randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { jwt, Tpm, type TpmKey } from '../lib/index.js';
import { cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { tpm2 } from './helpers/tools.js';

// PCR 16 is the debug PCR: resettable from software, so tests can move it and back.
const PCR16 = { bank: 'sha256', indexes: [16] } as const;

describe('18 PCR-bound keys', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let dir: string;

  before(async () => {
    dir = swtpm.tempDir('pcr');
    tpm = await swtpm.openTpm();
  });
  afterEach(() => tpm2(swtpm.tcti, 'pcrreset', '16'));

  const extend16 = () => tpm2(swtpm.tcti, 'pcrextend', `16:sha256=${randomBytes(32).toString('hex')}`);
  const signs = async (key: TpmKey) => {
    const data = Buffer.from('bound to the PCRs');
    return verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, await key.sign(data));
  };

  it('signs while PCR 16 holds, is ERR_TPM_POLICY_FAIL after an extend, signs after a reset', async () => {
    const key = await tpm.createKey({ alg: 'ES256', pcrs: { ...PCR16, indexes: [...PCR16.indexes] } });
    assert.equal(key.attributes.userWithAuth, false, 'the policy alone authorises');
    assert.deepEqual(key.pcrs, { bank: 'sha256', indexes: [16] });
    assert.ok(await signs(key));
    assert.equal(await key.policyHolds(), true);
    extend16();
    assert.equal(await key.policyHolds(), false, 'policyHolds says so without trying to sign');
    await assert.rejects(key.sign(Buffer.from('x')), { code: 'ERR_TPM_POLICY_FAIL' });
    tpm2(swtpm.tcti, 'pcrreset', '16');
    assert.equal(await key.policyHolds(), true);
    assert.ok(await signs(key));
    assert.equal(await (await tpm.createKey({ alg: 'ES256' })).policyHolds(), true, 'no policy: always');
  });

  it('with an auth value too: needs both the PCRs and the right value', async () => {
    const key = await tpm.createKey({ alg: 'ES256', auth: 'pin', pcrs: { bank: 'sha256', indexes: [16] } });
    assert.ok(await signs(key));
    const wrong = await tpm.loadKey(key.toPem(), { auth: 'nip' });
    await assert.rejects(wrong.sign(Buffer.from('x')), { code: 'ERR_TPM_AUTH_FAIL' });
    tpm2(swtpm.tcti, 'dictionarylockout', '-c');
    extend16();
    await assert.rejects(key.sign(Buffer.from('x')), { code: 'ERR_TPM_POLICY_FAIL' });
  });

  it('records the policy in the key file, so a loaded file signs under it', async () => {
    const pem = (await tpm.createKey({ alg: 'RS256', pcrs: { bank: 'sha256', indexes: [16, 7] } })).toPem();
    const loaded = await tpm.loadKey(pem);
    assert.deepEqual(loaded.pcrs, { bank: 'sha256', indexes: [7, 16] });
    assert.equal((await loaded.sign(Buffer.from('file'))).length, 256);
    extend16();
    await assert.rejects(loaded.sign(Buffer.from('file')), { code: 'ERR_TPM_POLICY_FAIL' });
  });

  it('has the authPolicy tpm2_createpolicy computes for the same PCRs', async () => {
    const key = await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [16] }, persist: 0x81000080 });
    swtpm.cleanup(() => tpm.evict(0x81000080));
    const policyFile = path.join(dir, 'policy.digest');
    tpm2(swtpm.tcti, 'createpolicy', '--policy-pcr', '-l', 'sha256:16', '-L', policyFile);
    // tpm2_createpolicy 5.4 leaves its trial session loaded (there is no resource
    // manager to clean up after it).
    tpm2(swtpm.tcti, 'flushcontext', '-l');
    const expected = readFileSync(policyFile).toString('hex');
    const readPublic = tpm2(swtpm.tcti, 'readpublic', '-c', '0x81000080');
    assert.match(readPublic, new RegExp(`authorization policy: ${expected}`, 'i'));
    assert.doesNotMatch(readPublic, /userwithauth/);
    assert.equal(key.handle, 0x81000080);
  });

  it('a persistent PCR key needs its pcrs to sign; CLI and descriptor pass them', async () => {
    const plain = await tpm.loadKey(0x81000080);
    await assert.rejects(plain.sign(Buffer.from('x')), { code: 'ERR_TPM_POLICY_FAIL', message: /pcrs/ });
    const bound = await tpm.loadKey(0x81000080, { pcrs: { bank: 'sha256', indexes: [16] } });
    assert.ok(await signs(bound));

    const email = 'sa@p.iam.gserviceaccount.com';
    const aud = 'https://storage.googleapis.com/';
    const minted = await cli([
      'token',
      '--key',
      '0x81000080',
      '--pcrs',
      'sha256:16',
      '--email',
      email,
      '--audience',
      aud,
      '--tcti',
      swtpm.tcti,
    ]);
    assert.equal(minted.code, 0, minted.stderr);
    assert.equal((await jwt.decode(minted.stdout.trim(), { certs: bound.publicKey, audience: aud })).sub, email);

    const descriptor = writeDescriptor(path.join(dir, 'sa.json'), {
      client_email: email,
      tpm: { tcti: swtpm.tcti, key: 'handle:0x81000080', pcrs: 'sha256:16' },
    });
    const creds = await jwt.Credentials.fromServiceAccountFile(descriptor, { audience: aud });
    try {
      await creds.refresh();
      assert.ok(await jwt.decode(creds.token!, { certs: bound.publicKey, audience: aud }));
    } finally {
      await creds.signer.close?.();
    }
  });

  it('keygen --pcrs writes a PCR-bound key file', async () => {
    const out = path.join(dir, 'pcr.pem');
    const made = await cli(['keygen', '--alg', 'ES256', '--out', out, '--pcrs', 'sha256:16', '--tcti', swtpm.tcti]);
    assert.equal(made.code, 0, made.stderr);
    const key = await tpm.loadKey(readFileSync(out, 'utf8'));
    assert.deepEqual(key.pcrs, { bank: 'sha256', indexes: [16] });
    assert.ok(await signs(key));
  });

  it('refuses bad selections with ERR_INVALID_ARGUMENT', async () => {
    for (const pcrs of [
      { bank: 'sha1', indexes: [0] },
      { bank: 'sha256', indexes: [] },
      { bank: 'sha256', indexes: [24] },
    ]) {
      await assert.rejects(tpm.createKey({ alg: 'ES256', pcrs: pcrs as never }), { code: 'ERR_INVALID_ARGUMENT' });
    }
  });
});
