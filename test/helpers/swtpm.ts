/**
 * A private software TPM per suite: started before the suite and stopped after it.
 * TPM_JWT_TEST_TCTI points every suite at an external TPM instead (docker-compose's
 * swtpm service).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { startSoftwareTpm, type SoftwareTpm } from '../../lib/testing/index.js';
import { Tpm, type TpmOpenOptions } from '../../lib/index.js';
import { ekCa, manufacture, type EkCa } from './ek-ca.js';
import { leftovers } from './tools.js';

export interface SwtpmFixture {
  /** The tctildr string for this suite's TPM. */
  readonly tcti: string;
  /**
   * Registers a teardown step (evict, close) to run after the suite's tests but while
   * the TPM is still up; steps run last-registered first.
   */
  cleanup(step: () => unknown): void;
  /** A Tpm on this suite's TPM, closed by the suite's teardown. */
  openTpm(options?: Omit<TpmOpenOptions, 'tcti'>): Promise<Tpm>;
  /** A fresh temporary directory, removed by the suite's teardown. */
  tempDir(prefix: string): string;
  /** With `ekCertificates`: the local CA that issued this TPM's EK certificates. */
  readonly ekCa: EkCa;
}

export interface SwtpmOptions {
  /**
   * Manufacture the TPM as a vendor would (swtpm_setup --create-ek-cert: RSA and ECC EKs
   * with certificates in NV from a local CA in a temporary directory). Such a suite always
   * runs its own swtpm, TPM_JWT_TEST_TCTI or not: a shared TPM has no EK certificates.
   */
  ekCertificates?: boolean;
}

/**
 * Registers before/after hooks on the current suite: a private swtpm for it, and at
 * the end the check that the suite left no transient object in the TPM.
 */
export function useSwtpm(options: SwtpmOptions = {}): SwtpmFixture {
  const external = options.ekCertificates ? undefined : process.env['TPM_JWT_TEST_TCTI'];
  let swtpm: SoftwareTpm | undefined;
  let ca: EkCa | undefined;
  const steps: (() => unknown)[] = [];
  const fixture: SwtpmFixture = {
    get tcti(): string {
      if (external) return external;
      if (!swtpm) throw new Error('swtpm is not running (used outside a test?)');
      return swtpm.tcti;
    },
    cleanup(step) {
      steps.push(step);
    },
    async openTpm(options = {}) {
      const tpm = await Tpm.open({ ...options, tcti: fixture.tcti });
      steps.push(() => tpm.close());
      return tpm;
    },
    tempDir(prefix) {
      const dir = mkdtempSync(path.join(tmpdir(), `tpm-jwt-${prefix}-`));
      steps.push(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    get ekCa(): EkCa {
      if (!ca) throw new Error('this suite did not ask for ekCertificates');
      return ca;
    },
  };
  before(async function () {
    this.timeout(20_000);
    if (!external) swtpm = await startSoftwareTpm();
    if (options.ekCertificates) {
      // swtpm_setup runs a TPM of its own on the state it writes: manufactured beside the
      // running swtpm, the state is copied in while that one is idle (no command, so no
      // write of its own) and loaded by a restart.
      const dir = fixture.tempDir('manufacture');
      manufacture(path.join(dir, 'state'), path.join(dir, 'ca'));
      copyFileSync(path.join(dir, 'state', 'tpm2-00.permall'), path.join(swtpm!.stateDir, 'tpm2-00.permall'));
      await swtpm!.restart();
      ca = ekCa(path.join(dir, 'ca'));
    }
  });
  // Mocha runs `after` hooks in the order they were registered, so this one, made
  // first, runs the suite's own teardown steps before it checks and stops the TPM.
  after(async function () {
    this.timeout(20_000);
    try {
      while (steps.length > 0) await steps.pop()!();
      if (swtpm || external) {
        const left = await leftovers(fixture.tcti, ['transient', 'loaded-session', 'saved-session']);
        if (left !== '') throw new Error(`the suite left handles in the TPM:\n${left}`);
      }
    } finally {
      await swtpm?.stop();
      swtpm = undefined;
    }
  });
  return fixture;
}
