/**
 * A private software TPM per suite: started before the suite and stopped after it.
 * TPM_JWT_TEST_TCTI points every suite at an external TPM instead (docker-compose's
 * swtpm service).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { startSwtpm, type Swtpm } from '../../scripts/swtpm.js';
import { Tpm, type TpmOpenOptions } from '../../lib/index.js';
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
}

/**
 * Registers before/after hooks on the current suite: a private swtpm for it, and at
 * the end the check that the suite left no transient object in the TPM.
 */
export function useSwtpm(): SwtpmFixture {
  const external = process.env['TPM_JWT_TEST_TCTI'];
  let swtpm: Swtpm | undefined;
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
  };
  before(async function () {
    this.timeout(20_000);
    if (!external) swtpm = await startSwtpm();
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
