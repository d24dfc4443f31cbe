/**
 * The chip group: what each path costs on a discrete TPM, counted in the commands it sends
 * and the time a chip would spend on them (the relay's discrete-spi profile), beside what
 * tpm2_sign, the tpm2-openssl provider and the raw Esys_Sign loop send through the same
 * relay for the same signature.
 *
 * Everything here runs in child processes or on the relay's own connections, and never
 * synchronously: the relay forwards from this process's event loop.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { Tpm } from '../lib/index.js';
import { usingTpm } from '../lib/tpm/tpm.js';
import { startChipRelay, type ChipRelay } from '../lib/testing/index.js';
import { CLI, compared, MESSAGE, RAW_SIGN, RS256_HANDLE, type Bench, type Row } from './common.js';

const run = promisify(execFile);
const SRK_HANDLE = 0x81000001;

const PROFILE = 'discrete-spi';

/** What one path cost at the relay: its commands in order, the chip time they charge, the wall time. */
interface Cost {
  commands: string[];
  tpmMs: number;
  wallMs: number;
}

async function cost(relay: ChipRelay, path: () => Promise<unknown>): Promise<Cost> {
  relay.clear();
  const start = process.hrtime.bigint();
  await path();
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  return { commands: relay.log.map((r) => r.command), tpmMs: relay.tpmTime(), wallMs };
}

/** The cost of one of `count` repetitions, after a first that is not counted. */
async function perRepetition(relay: ChipRelay, count: number, once: () => Promise<unknown>): Promise<Cost> {
  await once();
  const all = await cost(relay, async () => {
    for (let i = 0; i < count; i++) await once();
  });
  return {
    commands: all.commands.slice(0, Math.round(all.commands.length / count)),
    tpmMs: all.tpmMs / count,
    wallMs: all.wallMs / count,
  };
}

/** Two rows for a path against its baseline: commands sent, and chip time. */
function rows(figure: string, ours: Cost, baseline: Cost, bound?: { max: number }): Row[] {
  return [
    compared(`chip: ${figure}, TPM commands`, 'commands', ours.commands.length, baseline.commands.length),
    compared(`chip: ${figure}, TPM time (${PROFILE})`, 'ms', ours.tpmMs, baseline.tpmMs, bound),
  ];
}

export async function chipFigures(bench: Bench): Promise<Row[]> {
  const { tcti, dir, n, progress } = bench;
  if (!tcti.startsWith('swtpm:')) {
    progress('chip: skipped, the relay needs a swtpm TCTI (host and port)');
    return [];
  }
  const relay = await startChipRelay({ tcti, profile: PROFILE });
  const show = (label: string, c: Cost) =>
    progress(`chip: ${label}: ${c.commands.join(' ')} (${c.tpmMs} ms TPM, ${c.wallMs.toFixed(0)} ms wall)`);
  const env = {
    ...process.env,
    TPM2TOOLS_TCTI: relay.tcti,
    TPM2OPENSSL_TCTI: relay.tcti,
    TSS2_LOG: 'all+none',
  };
  const handle = `0x${RS256_HANDLE.toString(16)}`;
  const message = path.join(dir, 'chip-message');
  const digest = path.join(dir, 'chip-digest');
  const signature = path.join(dir, 'chip-signature');
  writeFileSync(message, MESSAGE);
  const keyFile = path.join(dir, 'chip-rs256.pem');
  const keyPem = await usingTpm({ tcti }, async (tpm) => (await tpm.createKey({ alg: 'RS256' })).toPem());
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  writeFileSync(digest, createHash('sha256').update(MESSAGE).digest());

  const cliToken = (key: string) =>
    run(
      process.execPath,
      [CLI, 'token', '--key', key, '--email', 'a@b', '--audience', 'https://x/', '--tcti', relay.tcti],
      { env },
    );
  const tpm2Sign = () => run('tpm2_sign', ['-c', handle, '-g', 'sha256', '-o', signature, message], { env });
  const opensslSign = () =>
    run('openssl', ['pkeyutl', '-provider', 'tpm2', '-provider', 'base', '-sign', '-inkey', keyFile, '-in', digest], {
      env,
      encoding: 'buffer',
    });
  const rawSigns = (count: number, encrypt: boolean) =>
    run(RAW_SIGN, [relay.tcti, handle.slice(2), String(count), 'rsassa', encrypt ? '1' : '0'], { env });

  try {
    // swtpm answers the first signature after it starts with TPM_RC_RETRY; keep that out.
    await tpm2Sign();
    const out: Row[] = [];

    const coldPaths = async (where: string, bound?: { max: number }) => {
      progress(`chip: a cold CLI token against one tpm2_sign run, persistent RS256, ${where}`);
      const tools = await cost(relay, tpm2Sign);
      show('tpm2_sign', tools);
      const coldToken = await cost(relay, () => cliToken(handle));
      show(`tpm-jwt token --key HANDLE (${where})`, coldToken);
      out.push(...rows(`cold CLI token, persistent key (encrypted, ${where}), vs tpm2_sign`, coldToken, tools, bound));

      progress(`chip: a cold CLI token against one tpm2-openssl signature, RS256 key file, ${where}`);
      const provider = await cost(relay, opensslSign);
      show('openssl pkeyutl -provider tpm2', provider);
      const coldFile = await cost(relay, () => cliToken(keyFile));
      show(`tpm-jwt token --key FILE (${where})`, coldFile);
      out.push(...rows(`cold CLI token, key file (encrypted, ${where}), vs tpm2-openssl`, coldFile, provider));
    };
    // Cold paths as a TPM comes (no SRK: the storage primary is made at each start), then
    // with the SRK persisted (tpm-jwt srk --persist) and evicted again. A TPM that has
    // something at the SRK's handle already (--tcti) is measured as it is, and left so.
    const found = await usingTpm({ tcti }, (tpm) => tpm.srk());
    if (found !== 'absent') {
      await coldPaths(found === 'storage-primary' ? 'SRK persisted' : 'another object at the SRK handle');
    } else {
      await coldPaths('no SRK');
      try {
        await usingTpm({ tcti }, (tpm) => tpm.srk({ persist: true }));
        await coldPaths('SRK persisted', { max: 1 });
      } finally {
        await usingTpm({ tcti }, async (tpm) => {
          if ((await tpm.srk()) === 'storage-primary') await tpm.evict(SRK_HANDLE);
        });
      }
    }

    progress('chip: first and warm signatures in one process, against the raw Esys_Sign loop');
    const count = n(10);
    for (const encrypt of [false, true]) {
      const session = encrypt ? 'encrypted' : 'no session encryption';
      // The raw loop's set-up (connection, session) is one run of one signature; the rest is per signature.
      const rawOne = await cost(relay, () => rawSigns(1, encrypt));
      const rawMany = await cost(relay, () => rawSigns(count + 1, encrypt));
      const perSign = (rawMany.commands.length - rawOne.commands.length) / count;
      const firstSign = rawOne.commands.indexOf('Sign');
      const raw: Cost = {
        commands: rawMany.commands.slice(firstSign, firstSign + perSign),
        tpmMs: (rawMany.tpmMs - rawOne.tpmMs) / count,
        wallMs: (rawMany.wallMs - rawOne.wallMs) / count,
      };
      show(`raw Esys_Sign loop (${session}), one signature`, raw);
      for (const [label, key] of [
        ['persistent key', RS256_HANDLE],
        ['key file', keyPem],
      ] as const) {
        let tpm: Tpm | undefined;
        try {
          const first = await cost(relay, async () => {
            tpm = await Tpm.open({ tcti: relay.tcti, encrypt });
            await (await tpm.loadKey(key)).sign(MESSAGE);
          });
          show(`open, load and first sign, ${label} (${session})`, first);
          out.push(...rows(`open and first sign, ${label} (${session}), vs raw loop set-up`, first, rawOne));
          const loaded = await tpm!.loadKey(key);
          const warm = await perRepetition(relay, count, () => loaded.sign(MESSAGE));
          show(`warm sign, ${label} (${session})`, warm);
          out.push(...rows(`warm sign, ${label} (${session}), vs raw Esys_Sign`, warm, raw));
        } finally {
          await tpm?.close();
        }
      }
    }
    return out;
  } finally {
    await relay.close();
  }
}
