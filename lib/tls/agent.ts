/**
 * An https.Agent whose connections authenticate with the TPM key (TpmTlsSocket): give it
 * to node:https, or to any client that takes an agent, and keep-alive works as usual.
 */
import { Agent, type AgentOptions, type RequestOptions } from 'node:https';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';

import type { TpmKey } from '../tpm/key.js';
import { TpmTlsSocket, type TpmTlsOptions } from './tpm-tls-socket.js';

export interface TpmTlsAgentOptions extends TpmTlsOptions {
  /** The TPM key the certificate is for. */
  key: TpmKey;
  /** node:https Agent options: keepAlive, maxSockets, ... */
  agent?: AgentOptions;
}

export class TpmTlsAgent extends Agent {
  readonly #options: TpmTlsAgentOptions;

  constructor(options: TpmTlsAgentOptions) {
    super({ keepAlive: true, ...options.agent });
    this.#options = options;
  }

  override createConnection(
    options: RequestOptions & { servername?: string },
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    const host = options.host ?? 'localhost';
    const port = typeof options.port === 'string' ? Number(options.port) : (options.port ?? 443);
    const { key, certificate, ca } = this.#options;
    const socket = connect({ host, port });
    try {
      return new TpmTlsSocket(key, socket, {
        certificate,
        ...(ca !== undefined && { ca }),
        // node:http sends an empty servername for an IP address: the name checked is then the address.
        servername: this.#options.servername || options.servername || host,
      });
    } catch (err) {
      // The request reports it as its 'error', as it would a refused connection.
      socket.destroy();
      callback?.(err as Error, socket);
      return undefined;
    }
  }
}
