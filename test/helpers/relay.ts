/**
 * A recording TCP relay for a swtpm: listens on a fresh port pair and forwards each
 * connection to swtpm's server and control ports, keeping every byte both ways. What
 * a wiretap on the TPM link would see.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

import { freePortPair } from '../../lib/testing/index.js';

/**
 * Decides, per TPM command seen on the server port, what the relay does with it: pass
 * it on (undefined), answer it itself (a response frame), cut the connection as a TPM
 * that restarts would ('drop'), or hold it and pass it on once the promise settles.
 */
export type Injector = (command: Buffer) => Buffer | 'drop' | Promise<void> | undefined;

export interface Relay {
  /** The tctildr string that goes through the relay. */
  readonly tcti: string;
  /** Everything that crossed the relay so far, in both directions. */
  captured(): Buffer;
  close(): Promise<void>;
}

function relayPort(
  listen: number,
  host: string,
  target: number,
  chunks: Buffer[],
  sockets: Set<Socket>,
  inject?: Injector,
): Promise<Server> {
  const server = createServer((client) => {
    const upstream = createConnection({ host, port: target });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
    // Commands are framed by their header: tag (2), size (4), command code (4).
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      chunks.push(Buffer.from(chunk));
      if (!inject) return void upstream.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 10 && pending.length >= pending.readUInt32BE(2)) {
        const command = pending.subarray(0, pending.readUInt32BE(2));
        pending = pending.subarray(command.length);
        const answer = inject(command);
        if (answer === 'drop') {
          client.destroy();
          upstream.destroy();
          return;
        }
        if (answer instanceof Promise) void answer.then(() => upstream.write(command));
        else if (answer) client.write(answer);
        else upstream.write(command);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      chunks.push(Buffer.from(chunk));
      client.write(chunk);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, '127.0.0.1', () => resolve(server));
  });
}

/** Starts a relay in front of the swtpm that a swtpm: TCTI names (its port and the next). */
export async function startRelay(tcti: string, inject?: Injector): Promise<Relay> {
  const host = /host=([^,]+)/.exec(tcti)?.[1] ?? '127.0.0.1';
  const targetPort = Number(/port=(\d+)/.exec(tcti)?.[1] ?? 2321);
  const port = await freePortPair();
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const servers = await Promise.all([
    relayPort(port, host, targetPort, chunks, sockets, inject),
    relayPort(port + 1, host, targetPort + 1, chunks, sockets),
  ]);
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    captured: () => Buffer.concat(chunks),
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}
