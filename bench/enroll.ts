/**
 * The enrollment server on one core: complete enrollments (attest, then activate) per
 * second through createEnrollmentHandler, called in this process with no HTTP around
 * it, against verifyAttestation alone on the same document (the verification that
 * dominates); and two replicas sharing a sealing key, each finishing the enrollments the
 * other began. The device side (a manufactured software TPM of its own) runs first, out
 * of the timing: one attestation, and the activations the timed round needs.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';

import { activateCredential, attestKey, verifyAttestation } from '../lib/attest/index.js';
import { certificateAuthority, createEnrollmentHandler } from '../lib/enroll/index.js';
import { Tpm } from '../lib/index.js';
import { startSoftwareTpm } from '../lib/testing/index.js';
import { absolute, compared, type Bench, type Row } from './common.js';

type Handler = ReturnType<typeof createEnrollmentHandler>;

/** One request through `handler` in memory: its status and JSON answer. */
function call(handler: Handler, step: string, body: unknown): Promise<{ status: number; body: any }> {
  const req = Object.assign(Readable.from([Buffer.from(JSON.stringify(body))]), {
    url: `/v1/enroll/${step}`,
    method: 'POST',
  }) as unknown as IncomingMessage;
  return new Promise((resolve) => {
    let status = 0;
    const res = {
      setHeader: () => undefined,
      writeHead: (code: number) => (status = code),
      end: (text: string) => resolve({ status, body: JSON.parse(text) }),
    } as unknown as ServerResponse;
    handler(req, res);
  });
}

export async function enrollFigures(bench: Bench): Promise<Row[]> {
  bench.progress('enroll: a manufactured software TPM, a fleet CA');
  const device = await startSoftwareTpm({ manufacture: true });
  try {
    const tpm = await Tpm.open({ tcti: device.tcti });
    const key = await tpm.createKey({ alg: 'ES256' });
    const keyFile = path.join(bench.dir, 'enroll-key.pem');
    writeFileSync(keyFile, key.toPem());
    const csr = await key.csr({ subject: 'CN=bench-device' });
    await tpm.close();
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
        ...['-subj', '/CN=Bench CA', '-addext', 'basicConstraints=critical,CA:TRUE'],
        ...['-addext', 'keyUsage=critical,keyCertSign', '-keyout', 'ca.key', '-out', 'ca.pem'],
      ],
      { cwd: bench.dir, stdio: 'ignore' },
    );
    const ca = certificateAuthority({
      certificate: readFileSync(path.join(bench.dir, 'ca.pem'), 'utf8'),
      key: readFileSync(path.join(bench.dir, 'ca.key'), 'utf8'),
    });
    const ekRoots = device.ca!.root;
    const attestation = await attestKey({ key: keyFile, tcti: device.tcti, ekChain: device.ca!.intermediate });
    const sealingKey = randomBytes(32);
    const [a, b] = [0, 1].map(() => createEnrollmentHandler({ ekRoots, sealingKey, ca, allow: () => true }));

    // The device's half, untimed: a challenge per enrollment, answered by its TPM.
    const count = bench.n(40);
    bench.progress(`enroll: ${count} challenges answered by the device's TPM`);
    const begun: { ticket: string; response: unknown }[] = [];
    for (let i = 0; i < count; i++) {
      const first = await call(a!, 'attest', { attestation, csr });
      if (first.status !== 200) throw new Error(`attest: ${JSON.stringify(first.body)}`);
      begun.push({
        ticket: first.body.ticket,
        response: await activateCredential(first.body.challenge, { tcti: device.tcti }),
      });
    }

    // Timed: each enrollment's two steps on the server, the second on the other replica.
    bench.progress('enroll: the server side, attest on one replica and activate on the other');
    const start = performance.now();
    let completed = 0;
    for (const { ticket, response } of begun) {
      const first = await call(a!, 'attest', { attestation, csr });
      if (first.status !== 200) throw new Error('attest failed');
      const done = await call(b!, 'activate', { attestation, csr, ticket, response });
      if (done.status === 200 && typeof done.body.certificate === 'string') completed++;
    }
    const enrollRate = count / ((performance.now() - start) / 1000);

    // The baseline: the verifier alone, on the document as a server receives it (JSON to parse).
    const text = JSON.stringify(attestation);
    const verifyStart = performance.now();
    for (let i = 0; i < count; i++) await verifyAttestation(JSON.parse(text), { roots: ekRoots });
    const verifyRate = count / ((performance.now() - verifyStart) / 1000);
    return [
      compared(
        'enrollments on one core (attest + activate + issue) vs verifyAttestation alone',
        'per s',
        enrollRate,
        verifyRate,
      ),
      absolute('enrollments begun on one replica and finished on another', 'of ' + count, completed, {
        text: `${count} of ${count}`,
        met: completed === count,
      }),
    ];
  } finally {
    await device.stop();
  }
}
