/**
 * A TPM as it leaves the factory: swtpm state manufactured by swtpm_setup with RSA and
 * ECC EKs and their certificates in NV, issued by swtpm_localca from a local CA whose
 * files stay in a directory of the test's (not /var/lib/swtpm-localca).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** The local CA: the root the EK certificates chain to, and the intermediate that signs them. */
export interface EkCa {
  readonly dir: string;
  /** PEM of the root CA certificate, and its file. */
  readonly root: string;
  readonly rootFile: string;
  /** PEM of the intermediate (swtpm_localca's issuer certificate). */
  readonly intermediate: string;
  /** The intermediate's private key, PEM. */
  readonly intermediateKeyFile: string;
  readonly intermediateFile: string;
}

function writeConfig(caDir: string): string {
  const localca = path.join(caDir, 'swtpm-localca.conf');
  writeFileSync(
    localca,
    [
      `statedir = ${caDir}`,
      `signingkey = ${path.join(caDir, 'signkey.pem')}`,
      `issuercert = ${path.join(caDir, 'issuercert.pem')}`,
      `certserial = ${path.join(caDir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  const options = path.join(caDir, 'swtpm-localca.options');
  writeFileSync(options, '--platform-manufacturer tpm-jwt\n--platform-version 1.0\n--platform-model test\n');
  const setup = path.join(caDir, 'swtpm_setup.conf');
  writeFileSync(
    setup,
    [
      'create_certs_tool = swtpm_localca',
      `create_certs_tool_config = ${localca}`,
      `create_certs_tool_options = ${options}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  return setup;
}

/**
 * Manufactures TPM state in `stateDir` with the CA in `caDir` (made on first use, reused
 * after, so two TPMs can share it). Returns the EK certificate files swtpm_setup wrote
 * besides NV (DER), by name. Throws with swtpm_setup's log when it fails.
 */
export function manufacture(stateDir: string, caDir: string): Record<string, Buffer> {
  mkdirSync(caDir, { recursive: true });
  const certs = path.join(stateDir, 'ek-certs');
  mkdirSync(certs, { recursive: true });
  const log = path.join(caDir, 'swtpm_setup.log');
  const args = [
    '--tpm2',
    '--create-ek-cert',
    '--create-platform-cert',
    '--tpmstate',
    stateDir,
    '--config',
    writeConfig(caDir),
    '--write-ek-cert-files',
    certs,
    '--overwrite',
    '--logfile',
    log,
    // As root, swtpm_setup would otherwise run swtpm as the tss user, which cannot
    // write a directory root made.
    ...(process.getuid?.() === 0 ? ['--runas', 'root'] : []),
  ];
  const result = spawnSync('swtpm_setup', args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    let detail = result.error?.message ?? result.stderr;
    try {
      detail += readFileSync(log, 'utf8');
    } catch {
      // no log: swtpm_setup did not start
    }
    throw new Error(`swtpm_setup failed (apt-get install swtpm-tools): ${detail}`);
  }
  return Object.fromEntries(readdirSync(certs).map((name) => [name, readFileSync(path.join(certs, name))]));
}

/** The local CA in `caDir` after a manufacture. */
export function ekCa(caDir: string): EkCa {
  const intermediateFile = path.join(caDir, 'issuercert.pem');
  const rootFile = path.join(caDir, 'swtpm-localca-rootca-cert.pem');
  return {
    dir: caDir,
    root: readFileSync(rootFile, 'utf8'),
    rootFile,
    intermediate: readFileSync(intermediateFile, 'utf8'),
    intermediateFile,
    intermediateKeyFile: path.join(caDir, 'signkey.pem'),
  };
}
