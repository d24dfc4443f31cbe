import { loadKeyRef } from '../../tpm/key-ref.js';
import { KEY_USE_OPTIONS, keyUse, optional, required, UsageError } from '../args.js';
import { withTpm, type Command } from '../command.js';

export const cert: Command = {
  usage: `tpm-jwt cert --key KEYREF --subject CN [--days N] [--auth-env VAR] [--pcrs sha256:0,7]

The certificate to register the key with a service account:

  tpm-jwt cert --key 0x81008001 --subject sa@p.iam.gserviceaccount.com > cert.pem
  gcloud iam service-accounts keys upload cert.pem --iam-account sa@p.iam.gserviceaccount.com`,
  options: {
    key: { type: 'string' },
    subject: { type: 'string' },
    days: { type: 'string' },
    ...KEY_USE_OPTIONS,
  },
  async run(values, io) {
    const ref = required(values, 'key');
    const subject = required(values, 'subject');
    const daysText = optional(values, 'days');
    const days = daysText === undefined ? undefined : Number(daysText);
    if (days !== undefined && !(Number.isInteger(days) && days > 0)) {
      throw new UsageError('--days must be a positive whole number');
    }
    const use = keyUse(values, io.env);
    const pem = await withTpm(values, async (tpm) => {
      const key = await loadKeyRef(tpm, ref, use);
      return key.certificate({ subject, ...(days !== undefined && { days }) });
    });
    io.out(pem);
  },
};
