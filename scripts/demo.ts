/**
 * npm run demo: makes a key in a TPM, signs with it there, and verifies the signature
 * with node:crypto. Uses the TPM named by --tcti or TPM2TOOLS_TCTI/TSS2_TCTI, else
 * starts a private swtpm for the run.
 */
import { verify } from 'node:crypto';
import { parseArgs } from 'node:util';

import { Tpm } from '../lib/index.js';
import { resolveTcti } from '../lib/tpm/tcti.js';
import { startSwtpm, type Swtpm } from './swtpm.js';

const say = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tcti: { type: 'string' } } });
  let swtpm: Swtpm | undefined;
  let tcti = resolveTcti(values.tcti);
  if (tcti === '') {
    say('No TPM configured (--tcti, TPM2TOOLS_TCTI): starting a private swtpm.');
    swtpm = await startSwtpm();
    tcti = swtpm.tcti;
  }
  const tpm = await Tpm.open({ tcti });
  try {
    say(`TPM: ${tcti}`);
    say('Creating an ES256 key inside the TPM...');
    const key = await tpm.createKey({ alg: 'ES256' });
    process.stdout.write(key.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const attrs = key.attributes;
    say(`fixedTPM=${attrs.fixedTPM} fixedParent=${attrs.fixedParent} sensitiveDataOrigin=${attrs.sensitiveDataOrigin}`);
    const message = Buffer.from('signed inside the TPM');
    const signature = await key.sign(message);
    const ok = verify('sha256', message, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    say(`ES256 signature ${Buffer.from(signature).toString('base64url')}`);
    say(`node:crypto verifies it: ${ok}`);
    if (!ok) process.exitCode = 1;
  } finally {
    await tpm.close();
    await swtpm?.stop();
  }
}

main().catch((err: Error & { code?: string }) => {
  say(`error [${err.code ?? 'ERR'}]: ${err.message}`);
  process.exitCode = 1;
});
