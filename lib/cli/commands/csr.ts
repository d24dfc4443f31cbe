import { loadKeyRef } from '../../tpm/key-ref.js';
import { KEY_USE_OPTIONS, keyUse, optional, required } from '../args.js';
import { withTpm, type Command } from '../command.js';
import { refuseExisting, writeOutput } from '../output-file.js';

export const csr: Command = {
  usage: `tpm-jwt csr --key KEYREF --subject DN [--san dns:NAME|uri:URI|ip:ADDRESS ...] [--out csr.pem]
        [--force] [--auth-env VAR] [--pcrs sha256:0,7]

A PKCS#10 certification request for the key, signed in the TPM, for a CA to issue the
key a certificate (TLS client authentication, X.509 Workload Identity Federation).
--subject is an RFC 4514 name, most specific first (CN=device-42,O=Example); --san
asks for subject alternative names. Printed, or written to --out (kept unless --force).

  tpm-jwt csr --key 0x81008001 --subject CN=device-42 --san dns:device-42.example.com --out csr.pem
  openssl req -in csr.pem -verify -noout -text`,
  options: {
    key: { type: 'string' },
    subject: { type: 'string' },
    san: { type: 'string', multiple: true },
    out: { type: 'string' },
    force: { type: 'boolean' },
    ...KEY_USE_OPTIONS,
  },
  async run(values, io) {
    const ref = required(values, 'key');
    const subject = required(values, 'subject');
    const subjectAltNames = (values['san'] as string[] | undefined) ?? [];
    const out = optional(values, 'out');
    const force = values['force'] === true;
    // Refused before the TPM signs: an existing file is kept.
    if (out !== undefined) await refuseExisting([out], force);
    const use = keyUse(values, io.env);
    const pem = await withTpm(values, async (tpm) => {
      const key = await loadKeyRef(tpm, ref, use);
      return key.csr({ subject, subjectAltNames });
    });
    if (out === undefined) io.out(pem);
    else await writeOutput(out, pem, force);
  },
};
