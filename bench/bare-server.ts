/**
 * The reference for the metadata server's load figure: node:http answering every request
 * with one status, header set and body (what `tpm-jwt serve-metadata` answered for a
 * cached token), and doing nothing else. The floor for any Node server on this machine.
 *
 *   node --import tsx bare-server.ts '{"headers": {...}, "body": "..."}'   # prints the port
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const { headers, body } = JSON.parse(process.argv[2]!) as { headers: Record<string, string>; body: string };
const server = createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
