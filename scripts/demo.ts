/**
 * npm run demo: the whole path once, end to end. A key is made inside a TPM, its
 * certificate is signed there, a self-signed JWT access token for a Google API is
 * minted with it and verified against the certificate, and its claims are printed.
 *
 * The TPM: --tcti, else TPM2TOOLS_TCTI / TSS2_TCTI, else /dev/tpmrm0 when this user
 * can open it, else a private swtpm started for the run and removed after it.
 */
import { accessSync, constants } from 'node:fs';
import { parseArgs } from 'node:util';

import { jwt, Tpm, TpmSigner } from '../lib/index.js';
import { resolveTcti } from '../lib/tpm/tcti.js';
import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';

const EMAIL = 'demo@tpm-jwt.iam.gserviceaccount.com';
const AUDIENCE = 'https://pubsub.googleapis.com/';
const say = (line: string) => process.stderr.write(`${line}\n`);

function reachableDevice(): string | undefined {
  try {
    accessSync('/dev/tpmrm0', constants.R_OK | constants.W_OK);
    return 'device:/dev/tpmrm0';
  } catch {
    return undefined;
  }
}

/** Runs `work`, printing a dot every half second while it takes long (RSA keygen). */
async function withProgress<T>(label: string, work: Promise<T>): Promise<T> {
  process.stderr.write(label);
  const timer = setInterval(() => process.stderr.write('.'), 500);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    process.stderr.write(' done\n');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tcti: { type: 'string' }, alg: { type: 'string', default: 'RS256' } } });
  const alg = values.alg === 'ES256' || values.alg === 'PS256' ? values.alg : 'RS256';
  let swtpm: SoftwareTpm | undefined;
  let tcti = resolveTcti(values.tcti) || reachableDevice();
  if (!tcti) {
    say('No TPM configured or reachable: starting a private swtpm for this run.');
    swtpm = await startSoftwareTpm();
    tcti = swtpm.tcti;
  }
  const tpm = await Tpm.open({ tcti });
  try {
    say(`TPM: ${tcti} (encrypted session, salt key ${tpm.saltKeyName.slice(0, 16)}...)`);
    const key = await withProgress(`1. Creating an ${alg} key inside the TPM`, tpm.createKey({ alg }));
    const attrs = key.attributes;
    say(
      `   fixedTPM=${attrs.fixedTPM} fixedParent=${attrs.fixedParent} sensitiveDataOrigin=${attrs.sensitiveDataOrigin}`,
    );

    const certificate = await key.certificate({ subject: EMAIL, days: 1 });
    say('2. Its self-signed certificate, signed inside the TPM (what you upload for a service account):');
    process.stdout.write(certificate);

    const signer = TpmSigner.fromKey(key, { keyId: 'demo-key' });
    const credentials = new jwt.Credentials(signer, { issuer: EMAIL, subject: EMAIL, audience: AUDIENCE });
    await credentials.refresh();
    say(`3. A self-signed JWT access token for ${AUDIENCE}:`);
    process.stdout.write(`${credentials.token}\n`);

    const claims = await jwt.decode(credentials.token!, { certs: { 'demo-key': certificate }, audience: AUDIENCE });
    say('4. Verified against the certificate; its claims:');
    process.stdout.write(`${JSON.stringify(claims, null, 2)}\n`);
  } finally {
    await tpm.close();
    await swtpm?.stop();
  }
}

main().catch((err: Error & { code?: string }) => {
  say(`error [${err.code ?? 'ERR'}]: ${err.message}`);
  process.exitCode = 1;
});
