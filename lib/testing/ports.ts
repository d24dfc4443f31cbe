/** Free loopback ports for a software TPM and the relays in front of it. */
import { createServer } from 'node:net';

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Two consecutive free ports (swtpm's server port and its control port right above).
 * They are picked below Linux's ephemeral range (32768 and up): the swtpm TCTI opens a
 * connection per command, so a busy test run leaves thousands of connections in
 * TIME-WAIT on ephemeral ports, and a pair picked there is often half taken.
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10000 + 2 * Math.floor(Math.random() * 11000);
    if ((await portIsFree(port)) && (await portIsFree(port + 1))) return port;
  }
  throw new Error('no free pair of consecutive TCP ports on 127.0.0.1');
}
