/**
 * The main flows (sign with a persistent key and with a key file, tokens, the metadata
 * server, attestation) through tpm-jwt/testing's chip relay with the discrete-SPI
 * profile, and under the faults a chip gives. What is asserted is what a chip makes
 * expensive: the TPM commands each flow sends, never wall time. The counts are the
 * design; a change that adds a command to a flow shows here.
 */
import assert from 'node:assert/strict';
import { verify, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { attestKey, jwt, Tpm, TpmSigner, type TpmJwtError } from '../lib/index.js';
import { startMetadataServer } from '../lib/metadata/index.js';
import {
  CHIP_PROFILES,
  startChipRelay,
  startSoftwareTpm,
  type ChipRelay,
  type SoftwareTpm,
  type TpmResponseName,
} from '../lib/testing/index.js';

const HANDLE = 0x81000071;
const KEY = 'handle:0x81000071';
const EMAIL = 'chip@p.iam.gserviceaccount.com';

describe('71 the main flows on a simulated discrete chip, counted in TPM commands', function () {
  this.timeout(120_000);
  let swtpm: SoftwareTpm;
  let relay: ChipRelay;
  let keyFile: string;

  before(async () => {
    swtpm = await startSoftwareTpm({ manufacture: true, key: { alg: 'ES256', persist: HANDLE } });
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    try {
      keyFile = path.join(swtpm.stateDir, 'rs256.pem');
      writeFileSync(keyFile, (await tpm.createKey({ alg: 'RS256' })).toPem());
    } finally {
      await tpm.close();
    }
    relay = await startChipRelay({ tcti: swtpm.tcti, profile: 'discrete-spi' });
  });

  after(async () => {
    await relay?.close();
    await swtpm?.stop();
  });

  beforeEach(() => {
    relay.setFaults([]);
    relay.clear();
  });

  /** The commands since the last call (answered by the TPM, not by a fault), by name. */
  function sent(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const record of relay.log) out[record.command] = (out[record.command] ?? 0) + 1;
    relay.clear();
    return out;
  }

  /** A signer that has signed once: swtpm answers the first Sign after its start with RETRY. */
  async function warmSigner(key: string, encrypt: boolean): Promise<TpmSigner> {
    const signer = await TpmSigner.open({ key, tcti: relay.tcti, encrypt });
    await signer.sign(Buffer.from('warm'));
    relay.clear();
    return signer;
  }

  describe('signing', () => {
    it('a persistent key: one Sign, the encrypted session saved around it; no CreatePrimary once open', async () => {
      const opened = await TpmSigner.open({ key: KEY, tcti: relay.tcti });
      // The salt for the encrypted session: one primary, at open.
      assert.equal(sent()['CreatePrimary'], 1);
      await opened.close();

      const encrypted = await warmSigner(KEY, true);
      await encrypted.sign(Buffer.from('a'));
      // The session is saved between calls, so it holds no slot while the signer is idle.
      assert.deepEqual(sent(), { ContextLoad: 1, Sign: 1, ContextSave: 1 });
      await encrypted.close();

      const plain = await warmSigner(KEY, false);
      await plain.sign(Buffer.from('a'));
      assert.deepEqual(sent(), { Sign: 1 });
      await plain.close();
      assert.deepEqual(sent(), {}, 'no session to flush');
    });

    it('a key file: loaded under its parent at open; each signature loads it back and flushes it', async () => {
      const encrypted = await TpmSigner.open({ key: keyFile, tcti: relay.tcti });
      const opened = sent();
      assert.equal(opened['CreatePrimary'], 2, 'the salt primary and the parent');
      assert.equal(opened['Load'], 1);
      await encrypted.sign(Buffer.from('first'));
      relay.clear();
      await encrypted.sign(Buffer.from('a'));
      // The key's context and the session's, back in; the key flushed after: it holds no
      // object slot between signatures (a chip has three).
      assert.deepEqual(sent(), { ContextLoad: 2, Sign: 1, ContextSave: 1, FlushContext: 1 });
      await encrypted.close();

      const plain = await warmSigner(keyFile, false);
      await plain.sign(Buffer.from('a'));
      assert.deepEqual(sent(), { ContextLoad: 1, Sign: 1, FlushContext: 1 });
      await plain.close();
    });

    it('charges the TPM time a discrete chip would spend: a Sign is most of a warm signature', async () => {
      const signer = await warmSigner(keyFile, true);
      await signer.sign(Buffer.from('a'));
      const profile = CHIP_PROFILES['discrete-spi'];
      assert.equal(relay.tpmTime(), profile.Sign! + 2 * profile.ContextLoad! + profile.ContextSave! + profile.default);
      await signer.close();
    });
  });

  describe('tokens', () => {
    it('OnDemandCredentials: one Sign per audience, none for a token it holds', async () => {
      const signer = await warmSigner(keyFile, false);
      const credentials = new jwt.OnDemandCredentials(signer, { issuer: EMAIL, subject: EMAIL });
      await credentials.tokenForAudience('https://a.googleapis.com/');
      await credentials.tokenForAudience('https://a.googleapis.com/');
      await credentials.tokenForAudience('https://b.googleapis.com/');
      assert.equal(sent()['Sign'], 2);
      await signer.close();
    });

    it('the metadata server (jwt-access): twenty concurrent token requests, one Sign', async () => {
      const signer = await warmSigner(KEY, true);
      const server = await startMetadataServer({ mode: 'jwt-access', signer, email: EMAIL, port: 0 });
      try {
        const url = `${server.url}/computeMetadata/v1/instance/service-accounts/default/token`;
        const answers = await Promise.all(
          Array.from({ length: 20 }, () => fetch(url, { headers: { 'metadata-flavor': 'Google' } })),
        );
        const tokens = await Promise.all(answers.map(async (a) => (await a.json()) as { access_token: string }));
        assert.equal(new Set(tokens.map((t) => t.access_token)).size, 1);
        assert.deepEqual(sent(), { ContextLoad: 1, Sign: 1, ContextSave: 1 });
      } finally {
        await server.close();
        await signer.close();
      }
    });
  });

  it('attestation: one Certify, each EK certificate read from NV once', async () => {
    const doc = await attestKey({
      tcti: relay.tcti,
      key: KEY,
      ekChain: swtpm.ca!.intermediate,
    });
    assert.ok(doc.ek.certificates.length >= 1);
    // swtpm answers the first Certify after its start with RETRY, as it does the first Sign.
    assert.equal(relay.log.filter((r) => r.command === 'Certify' && r.rc === 0).length, 1);
    const commands = sent();
    assert.equal(commands['CreatePrimary'], 2, 'the salt primary and the AK');
    // Read in chunks of the TPM's largest NV buffer (1024 bytes on swtpm), no index twice.
    const chunks = doc.ek.certificates.map((c) => Math.ceil(new X509Certificate(c.pem).raw.length / 1024));
    assert.equal(
      commands['NV_Read'],
      chunks.reduce((a, b) => a + b, 0),
    );
  });

  describe('under faults', () => {
    const transient: TpmResponseName[] = ['RETRY', 'YIELDED', 'TESTING', 'NV_RATE'];
    for (const rc of transient) {
      it(`signs through TPM_RC_${rc} answered to every second Sign, each signature valid`, async () => {
        const signer = await warmSigner(KEY, false);
        relay.setFaults([{ command: 'Sign', every: 2, rc }]);
        for (const n of [1, 2, 3, 4]) {
          const message = Buffer.from(`under ${rc} ${n}`);
          const signature = await signer.sign(message);
          assert.ok(verify('sha256', message, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
        }
        const faulted = relay.log.filter((r) => r.fault !== undefined).length;
        // Sign 1 passes, 2 is answered, its retry (3) passes, and so on: one answer per signature after the first.
        assert.equal(faulted, 3);
        assert.equal(sent()['Sign'], 4 + faulted);
        await signer.close();
      });
    }

    it('TPM_RC_LOCKOUT is ERR_TPM_LOCKOUT at once, not tried again; the next signature goes through', async () => {
      const signer = await warmSigner(KEY, false);
      relay.setFaults([{ command: 'Sign', rc: 'LOCKOUT', times: 1 }]);
      await assert.rejects(signer.sign(Buffer.from('x')), (err: TpmJwtError) => err.code === 'ERR_TPM_LOCKOUT');
      assert.deepEqual(sent(), { Sign: 1 });
      await signer.sign(Buffer.from('y'));
      assert.deepEqual(sent(), { Sign: 1 });
      await signer.close();
    });

    it('a link cut halfway through a response: one new connection, the signature made again, no error', async () => {
      const signer = await warmSigner(KEY, false);
      relay.setFaults([{ command: 'Sign', drop: 'mid-response', times: 1 }]);
      const message = Buffer.from('across a cut link');
      const signature = await signer.sign(message);
      assert.ok(verify('sha256', message, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
      // The cut Sign, then the context made again (Startup, the key's public area) and the Sign.
      assert.deepEqual(sent(), { Sign: 2, Startup: 1, ReadPublic: 1 });
      await signer.close();
    });

    it('the metadata server serves through a cut link with no failed request', async () => {
      const signer = await warmSigner(KEY, true);
      const server = await startMetadataServer({ mode: 'jwt-access', signer, email: EMAIL, port: 0 });
      try {
        relay.setFaults([{ command: 'Sign', drop: 'before', times: 1 }]);
        const answer = await fetch(`${server.url}/computeMetadata/v1/instance/service-accounts/default/token`, {
          headers: { 'metadata-flavor': 'Google' },
        });
        assert.equal(answer.status, 200);
        assert.equal(relay.log.filter((r) => r.command === 'Sign' && r.rc === 0).length, 1);
      } finally {
        await server.close();
        await signer.close();
      }
    });
  });
});
