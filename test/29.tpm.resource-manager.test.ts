/**
 * Behind a resource manager: tpm2-abrmd on a private D-Bus, giving each connection
 * three loaded objects as the kernel's /dev/tpmrm0 does. With one, a context keeps its
 * session and keys loaded between calls (the resource manager swaps them out for
 * others), and releases its slots before a command that needs more than three objects
 * (attestation); many processes share the TPM with no waiting for slots.
 */
import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { attestKey, createActivationChallenge, activateCredential, verifyAttestation } from '../lib/attest/index.js';
import { Tpm, TpmSigner } from '../lib/index.js';
import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';
import { overlayEnv } from './helpers/env.js';
import { signAtOnce } from './helpers/signer-processes.js';
import { startTabrmd, type Tabrmd } from './helpers/tabrmd.js';
import { failing } from './helpers/verdict.js';

describe('29 behind a resource manager (tpm2-abrmd, three objects per connection)', function () {
  this.timeout(180_000);
  let swtpm: SoftwareTpm;
  let tabrmd: Tabrmd;
  let restoreEnv: () => void;
  let keyFile: string;

  before(async () => {
    swtpm = await startSoftwareTpm({ manufacture: true });
    tabrmd = await startTabrmd(swtpm.tcti, swtpm.stateDir);
    // The tabrmd TCTI finds the bus through the environment, in this process and its children.
    restoreEnv = overlayEnv({ DBUS_SESSION_BUS_ADDRESS: tabrmd.bus });
    const tpm = await Tpm.open({ tcti: tabrmd.tcti });
    try {
      keyFile = path.join(swtpm.stateDir, 'key.pem');
      writeFileSync(keyFile, (await tpm.createKey({ alg: 'ES256' })).toPem());
      await tpm.createKey({ alg: 'RS256', persist: 0x81000029 });
    } finally {
      await tpm.close();
    }
  });

  after(async () => {
    restoreEnv?.();
    await tabrmd?.stop();
    await swtpm?.stop();
  });

  it('signs with a key file and a persistent key, encrypted, call after call', async () => {
    for (const key of [keyFile, 'handle:0x81000029']) {
      const signer = await TpmSigner.open({ key, tcti: tabrmd.tcti });
      try {
        for (const n of [1, 2, 3]) {
          const message = Buffer.from(`${key} ${n}`);
          const signature = await signer.sign(message);
          const dsaEncoding = signer.algorithm === 'ES256' ? 'ieee-p1363' : undefined;
          assert.ok(
            verify('sha256', message, { key: signer.publicKey, ...(dsaEncoding && { dsaEncoding }) }, signature),
          );
        }
      } finally {
        await signer.close();
      }
    }
  });

  for (const mode of ['encrypt', 'plain']) {
    it(`8 processes x 50 signs with a key file, ${mode} sessions: all succeed and verify`, async () => {
      const outputs = await signAtOnce(tabrmd.tcti, 8, keyFile, 50, mode);
      assert.deepEqual(
        outputs.map((out) => out.split(' ').slice(0, 2).join(' ')),
        Array(8).fill('ok 50'),
      );
    });
  }

  it('attests a key, with credential activation, within three objects per connection', async () => {
    const doc = await attestKey({ tcti: tabrmd.tcti, key: keyFile, ekChain: swtpm.ca!.intermediate });
    const made = await createActivationChallenge(doc, { roots: swtpm.ca!.root });
    const response = await activateCredential(made.challenge, { tcti: tabrmd.tcti });
    const verdict = await verifyAttestation(doc, {
      roots: swtpm.ca!.root,
      activation: { expected: made.expected, response },
    });
    assert.deepEqual(failing(verdict), [], JSON.stringify(verdict.reasons));
  });
});
