/** A TLS key and self-signed certificate for a loopback stand-in (127.0.0.1, or `san`), made by openssl. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface LoopbackTls {
  key: string;
  /** The certificate, also the CA a client trusts. */
  cert: string;
}

export function loopbackTls(dir: string, name: string, san = 'IP:127.0.0.1'): LoopbackTls {
  const keyFile = path.join(dir, `${name}-tls.key`);
  const certFile = path.join(dir, `${name}-tls.pem`);
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-subj', '/CN=127.0.0.1', '-addext', `subjectAltName=${san}`, '-keyout', keyFile, '-out', certFile],
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}
