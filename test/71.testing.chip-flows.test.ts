/**
 * The main flows (sign with a persistent key and with a key file, tokens, the metadata
 * server, attestation) through tpm-jwt/testing's chip relay with the discrete-SPI
 * profile, and under the faults a chip gives. What is asserted is what a chip makes
 * expensive: the TPM commands each flow sends, never wall time. The counts are the
 * design; a change that adds a command to a flow shows here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { verify, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { attestKey, jwt, Tpm, TpmSigner, type TpmJwtError } from '../lib/index.js';
import { startMetadataServer } from '../lib/metadata/index.js';
import {
  CHIP_PROFILES,
  startChipRelay,
  startSoftwareTpm,
  type ChipRelay,
  type SoftwareTpm,
  type TpmCommandName,
  type TpmResponseName,
} from '../lib/testing/index.js';
import { startFakeGoogle } from './helpers/fake-google.js';

// tpm2_sign runs while the relay, in this process, forwards its commands: never synchronously.
const run = promisify(execFile);
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
      assert.equal(opened['CreatePrimary'], 1, 'one primary: the salt key, then the parent');
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

    // Every command of a cold key-file signature with the encrypted session, each in turn
    // answered "not now" once: the SRK looked for, the primary, the session, the key's
    // load, the contexts saved and loaded back, the signature, the flushes.
    const everyCommand: TpmCommandName[] = [
      'ReadPublic',
      'CreatePrimary',
      'StartAuthSession',
      'Load',
      'ContextSave',
      'ContextLoad',
      'Sign',
      'FlushContext',
    ];
    for (const rc of ['RETRY', 'YIELDED', 'TESTING'] as const) {
      it(`TPM_RC_${rc} once on each command of a cold key-file signature: invisible, nothing left loaded`, async () => {
        // Time is not what is asserted here: no chip latency, so that 8 cold starts stay quick.
        relay.setProfile(undefined);
        try {
          for (const command of everyCommand) {
            relay.setFaults([{ command, rc, nth: 1 }]);
            relay.clear();
            const signer = await TpmSigner.open({ key: keyFile, tcti: relay.tcti });
            const message = Buffer.from(`${rc} on ${command}`);
            const signature = await signer.sign(message);
            await signer.close();
            assert.ok(verify('sha256', message, signer.publicKey, signature), command);
            assert.equal(relay.log.filter((r) => r.fault !== undefined).length, 1, `${command} was answered ${rc}`);
            // Asked through the relay, asynchronously: it forwards from this process.
            const left = await run('tpm2_getcap', ['handles-transient'], {
              env: { ...process.env, TPM2TOOLS_TCTI: relay.tcti },
            });
            assert.equal(left.stdout.trim(), '', `left loaded after ${command}`);
          }
        } finally {
          relay.setProfile('discrete-spi');
        }
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

    it('TPM_RC_NV_RATE on every EvictControl: ERR_TPM_BUSY after the retries, nothing persisted', async () => {
      const tpm = await Tpm.open({ tcti: relay.tcti, encrypt: false });
      try {
        relay.setFaults([{ command: 'EvictControl', rc: 'NV_RATE' }]);
        await assert.rejects(tpm.createKey({ alg: 'ES256', persist: 0x81000072 }), { code: 'ERR_TPM_BUSY' });
        assert.ok(relay.log.filter((r) => r.fault !== undefined).length > 1, 'tried again before giving up');
        relay.setFaults([]);
        assert.ok(!(await tpm.persistentHandles()).includes(0x81000072));
      } finally {
        await tpm.close();
      }
    });

    it('a link cut halfway through a response: one new connection, the signature made again, no error', async () => {
      const signer = await warmSigner(KEY, false);
      relay.setFaults([{ command: 'Sign', drop: 'mid-response', times: 1 }]);
      const message = Buffer.from('across a cut link');
      const signature = await signer.sign(message);
      assert.ok(verify('sha256', message, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature));
      // The cut Sign, then the context made again (the SRK looked for, the key's public
      // area) and the Sign.
      assert.deepEqual(sent(), { Sign: 2, ReadPublic: 2 });
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
  it('the metadata server refreshes ahead: no request waits for a refresh, an outage fails none', async function () {
    this.timeout(60_000);
    // Tokens due for refresh 3 s after they are issued (expires_in 228, refreshed 225 s
    // before expiry); every exchange takes 800 ms on top of the chip's signature; the
    // endpoint refuses the two exchanges after the second token (an outage through two
    // background attempts, 1 s apart and then 2 s).
    const signer = await warmSigner(KEY, true);
    const google = await startFakeGoogle(signer.publicKey);
    let issued = 0;
    let refused = 0;
    google.onToken = () => {
      if (issued === 2 && refused < 2) {
        refused++;
        return { status: 503, body: { error: 'unavailable' }, delayMs: 800 };
      }
      return { body: { access_token: `at-${++issued}`, expires_in: 228, token_type: 'Bearer' }, delayMs: 800 };
    };
    const server = await startMetadataServer({ signer, email: EMAIL, tokenUrl: google.tokenUrl, port: 0 });
    try {
      const url = `${server.url}/computeMetadata/v1/instance/service-accounts/default/token`;
      const served: { ms: number; token: string }[] = [];
      const deadline = Date.now() + 40_000;
      while (new Set(served.map((s) => s.token)).size < 3 && Date.now() < deadline) {
        const sent = performance.now();
        const answer = await fetch(url, { headers: { 'metadata-flavor': 'Google' } });
        assert.equal(answer.status, 200, await answer.clone().text());
        const { access_token: token } = (await answer.json()) as { access_token: string };
        served.push({ ms: performance.now() - sent, token });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual([...new Set(served.map((s) => s.token))], ['at-1', 'at-2', 'at-3']);
      assert.equal(refused, 2);
      // The first request waits for the first token; none after it waits for a refresh.
      const waited = served.slice(1).filter((s) => s.ms >= 800);
      assert.deepEqual(waited, [], 'a request waited for a refresh');
    } finally {
      await server.close();
      await google.close();
      await signer.close();
    }
  });

  describe('the cold path: a process that opens, signs once and closes', () => {
    /** What a cold `tpm-jwt token` does: open, load, one signature, close. */
    async function coldSign(key: string): Promise<void> {
      const signer = await TpmSigner.open({ key, tcti: relay.tcti });
      await signer.sign(Buffer.from('cold'));
      await signer.close();
    }
    const tpm2Sign = async () => {
      const message = path.join(swtpm.stateDir, 'message');
      writeFileSync(message, 'cold');
      await run('tpm2_sign', ['-c', `0x${HANDLE.toString(16)}`, '-g', 'sha256', '-o', `${message}.sig`, message], {
        env: { ...process.env, TPM2TOOLS_TCTI: relay.tcti, TSS2_LOG: 'all+none' },
      });
    };

    before(async () => {
      // swtpm answers the first Sign after its start with RETRY: spent here, not in a count.
      await coldSign(KEY);
    });

    it("without an SRK: one CreatePrimary, the salt key and then the key file's parent", async () => {
      relay.clear();
      await coldSign(keyFile);
      const commands = sent();
      assert.equal(commands['CreatePrimary'], 1);
      assert.equal(commands['Load'], 1);
    });

    it('with the SRK persisted: no CreatePrimary, and no more TPM time than tpm2_sign on the same key', async () => {
      const tpm = await Tpm.open({ tcti: swtpm.tcti });
      try {
        assert.equal(await tpm.srk(), 'absent');
        assert.equal(await tpm.srk({ persist: true }), 'storage-primary');
        assert.equal(await tpm.srk({ persist: true }), 'storage-primary', 'persisting again changes nothing');
      } finally {
        await tpm.close();
      }
      try {
        relay.clear();
        await tpm2Sign();
        const tools = relay.tpmTime();
        relay.clear();
        await coldSign(KEY);
        const ours = relay.tpmTime();
        const persistent = sent();
        assert.equal(persistent['CreatePrimary'], undefined, JSON.stringify(persistent));
        assert.ok(ours <= tools, `${ours} ms of TPM time against tpm2_sign's ${tools} ms`);

        // A key file loads under the SRK: the storage primary's own key, persisted.
        await coldSign(keyFile);
        const file = sent();
        assert.equal(file['CreatePrimary'], undefined, JSON.stringify(file));
        assert.equal(file['Load'], 1);
      } finally {
        const tpm = await Tpm.open({ tcti: swtpm.tcti });
        await tpm.evict(0x81000001);
        await tpm.close();
      }
    });

    it('a foreign SRK of the storage template: it salts; key files it refuses load under the primary', async () => {
      // The RSA storage primary persisted by tpm2-tools: tpm-jwt's own template for a TPM
      // without ECC, so not the (ECC) parent of this TPM's key files.
      const tools = { env: { ...process.env, TPM2TOOLS_TCTI: relay.tcti, TSS2_LOG: 'all+none' } };
      const context = path.join(swtpm.stateDir, 'rsa-srk.ctx');
      const attributes = 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda';
      await run(
        'tpm2_createprimary',
        ['-C', 'o', '-G', 'rsa2048:null:aes128cfb', '-a', attributes, '-c', context],
        tools,
      );
      await run('tpm2_evictcontrol', ['-C', 'o', '-c', context, '0x81000001'], tools);
      await run('tpm2_flushcontext', ['-t'], tools);
      try {
        relay.clear();
        const signer = await TpmSigner.open({ key: keyFile, tcti: relay.tcti });
        const message = Buffer.from('under the primary');
        assert.ok(verify('sha256', message, signer.publicKey, await signer.sign(message)));
        await signer.close();
        const order = relay.log.map((r) => r.command);
        assert.ok(order.indexOf('StartAuthSession') < order.indexOf('CreatePrimary'), 'salted to the SRK');
        const loads = relay.log.filter((r) => r.command === 'Load').map((r) => r.rc);
        assert.equal(loads.length, 2, 'tried under the SRK, then under the primary');
        assert.notEqual(loads[0], 0);
        assert.equal(loads[1], 0);
        assert.equal(relay.count('CreatePrimary'), 1);
      } finally {
        await run('tpm2_evictcontrol', ['-C', 'o', '-c', '0x81000001'], tools);
      }
    });

    it('an SRK that is another key: refused without force; key files load under the storage primary', async () => {
      const tpm = await Tpm.open({ tcti: swtpm.tcti });
      try {
        const other = await tpm.createKey({ alg: 'ES256', persist: 0x81000001 });
        assert.equal(other.handle, 0x81000001);
        assert.equal(await tpm.srk(), 'other');
        await assert.rejects(tpm.srk({ persist: true }), { code: 'ERR_TPM_HANDLE_IN_USE' });
        relay.clear();
        // A signing key cannot salt a session, nor be a parent: the storage primary serves.
        await coldSign(keyFile);
        const commands = sent();
        assert.equal(commands['CreatePrimary'], 1, JSON.stringify(commands));
        assert.equal(await tpm.srk({ persist: true, force: true }), 'storage-primary');
      } finally {
        await tpm.evict(0x81000001);
        await tpm.close();
      }
    });
  });
});
