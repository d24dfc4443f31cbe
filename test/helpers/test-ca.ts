/**
 * A two-level CA made by openssl for the tests that need certificates for TPM keys
 * (Roles Anywhere, X.509 federation): a root, an intermediate it issued, and
 * certificates the intermediate issues from a TPM key's own CSR.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import type { TpmKey } from '../../lib/index.js';

export interface TestCa {
  /** Files: the root, the intermediate (PEM). */
  readonly root: string;
  readonly intermediate: string;
  /**
   * A certificate for `key` with subject CN=`name`, issued by the intermediate from the
   * key's CSR; valid for a day, or between `validity` (openssl's YYYYMMDDHHMMSSZ).
   */
  issue(key: TpmKey, name: string, validity?: { start: string; end: string }): Promise<{ pem: string; file: string }>;
}

const CA_EXTENSIONS = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n';

export function makeTestCa(dir: string, name = 'Fleet'): TestCa {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  writeFileSync(path.join(dir, 'ca.ext'), CA_EXTENSIONS);
  openssl(
    ...['req', '-x509', ...ecKey, '-days', '1', '-subj', `/CN=${name} Root`, '-keyout', 'root.key', '-out', 'root.pem'],
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
  );
  openssl('req', '-new', ...ecKey, '-subj', `/CN=${name} Issuing`, '-keyout', 'intermediate.key', '-out', 'i.csr');
  openssl(
    ...['x509', '-req', '-in', 'i.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '1'],
    ...['-extfile', 'ca.ext', '-out', 'intermediate.pem'],
  );
  // `openssl ca` sets any validity (x509 -req only counts days from now): its database, in the directory.
  writeFileSync(path.join(dir, 'index.txt'), '');
  writeFileSync(
    path.join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = issuing',
      '[issuing]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'new_certs_dir = $dir',
      'rand_serial = yes',
      'certificate = $dir/intermediate.pem',
      'private_key = $dir/intermediate.key',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  return {
    root: path.join(dir, 'root.pem'),
    intermediate: path.join(dir, 'intermediate.pem'),
    async issue(key, cn, validity) {
      writeFileSync(path.join(dir, `${cn}.csr`), await key.csr({ subject: `CN=${cn}` }));
      const dates = validity ? ['-startdate', validity.start, '-enddate', validity.end] : ['-days', '1'];
      openssl('ca', '-batch', '-config', 'ca.cnf', '-notext', '-in', `${cn}.csr`, '-out', `${cn}.pem`, ...dates);
      const file = path.join(dir, `${cn}.pem`);
      return { pem: readFileSync(file, 'utf8'), file };
    },
  };
}
