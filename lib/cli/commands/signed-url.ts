import { MAX_SIGNED_URL_SECONDS, SIGNED_URL_METHODS, signStorageUrl } from '../../google/storage.js';
import { optional, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { KEY_OPTIONS, openSigner } from '../signer-source.js';

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** --expires: N, Ns, Nm, Nh or Nd, at most seven days, in seconds. */
function parseExpires(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text);
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2] || 's']! : NaN;
  if (!(seconds >= 1 && seconds <= MAX_SIGNED_URL_SECONDS)) {
    throw new UsageError(`--expires ${text}: expected a duration like 900, 15m, 12h or 7d, at most 7d`);
  }
  return seconds;
}

/** gs://BUCKET/OBJECT as its two parts. */
function parseGsUrl(text: string | undefined): { bucket: string; object: string } {
  const match = text === undefined ? null : /^gs:\/\/([^/]+)\/(.+)$/.exec(text);
  if (!match) throw new UsageError('give the object as gs://BUCKET/OBJECT');
  return { bucket: match[1]!, object: match[2]! };
}

export const signedUrl: Command = {
  usage: `tpm-jwt signed-url (--credentials descriptor.json | --key KEYREF --email EMAIL) gs://BUCKET/OBJECT
         [--method GET|HEAD|PUT|DELETE] [--expires 15m] [--endpoint URL] [--auth-env VAR] [--pcrs sha256:0,7]

Prints a Cloud Storage V4 signed URL (GOOG4-RSA-SHA256) for the object, signed in
the TPM: anyone holding it may --method the object until it expires (--expires N,
Ns, Nm, Nh or Nd, default 15m, at most 7d). No IAM call, no Token Creator role: the
service account's own key signs. The key must be RSA (RS256). --endpoint points
the URL at another scheme and host than https://storage.googleapis.com (its host
name is signed). --json adds the method and expiry.

  tpm-jwt signed-url --credentials sa-tpm.json gs://my-bucket/reports/q3.pdf --expires 1h
  curl -T q4.pdf "$(tpm-jwt signed-url --credentials sa-tpm.json gs://my-bucket/reports/q4.pdf --method PUT)"`,
  positionals: true,
  options: {
    ...KEY_OPTIONS,
    email: { type: 'string' },
    method: { type: 'string' },
    expires: { type: 'string' },
    endpoint: { type: 'string' },
  },
  async run(values, io, positionals) {
    if (positionals.length > 1) throw new UsageError('give one gs://BUCKET/OBJECT');
    const { bucket, object } = parseGsUrl(positionals[0]);
    const method = (optional(values, 'method') ?? 'GET').toUpperCase();
    if (!(SIGNED_URL_METHODS as readonly string[]).includes(method)) {
      throw new UsageError(`--method must be one of ${SIGNED_URL_METHODS.join(', ')}`);
    }
    const expiresIn = parseExpires(optional(values, 'expires') ?? '15m');
    const endpoint = optional(values, 'endpoint');
    const now = new Date();
    const { signer, email } = await openSigner(values, io);
    let url: string;
    try {
      url = await signStorageUrl(signer, {
        email,
        bucket,
        object,
        method,
        expiresIn,
        now,
        ...(endpoint !== undefined && { endpoint }),
      });
    } finally {
      await signer.close?.();
    }
    const expires = new Date(Math.floor(now.getTime() / 1000) * 1000 + expiresIn * 1000);
    io.out(values['json'] ? json({ url, method, expires: expires.toISOString() }) : `${url}\n`);
  },
};
