/**
 * Fails any outgoing connection to an address that is not this machine's loopback,
 * for the length of a suite: client libraries must never reach Google, a metadata
 * server or anything else from the tests.
 */
import { Socket } from 'node:net';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export function loopbackOnly(): { attempts: string[] } {
  const attempts: string[] = [];
  const original = Socket.prototype.connect;
  before(() => {
    Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
      const first = args[0] as { host?: string; path?: string } | number | string;
      const host =
        typeof first === 'object' && first !== null ? first.host : typeof args[1] === 'string' ? args[1] : undefined;
      const path =
        typeof first === 'object' && first !== null ? first.path : typeof first === 'string' ? first : undefined;
      if (path === undefined && host !== undefined && !LOOPBACK.test(host)) {
        attempts.push(host);
        throw new Error(`the tests may not connect to ${host}`);
      }
      return (original as (...a: unknown[]) => Socket).apply(this, args);
    } as typeof Socket.prototype.connect;
  });
  after(() => {
    Socket.prototype.connect = original;
  });
  return { attempts };
}
