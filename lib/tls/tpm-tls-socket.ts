/**
 * TLS with the TPM key as the client's: a Duplex of plaintext over a TCP socket, its TLS
 * done in the addon (OpenSSL 3 with a provider whose signature is TPM2_Sign), each step on
 * the TPM context's own thread. The handshake costs one TPM signature; a kept-alive
 * connection costs none. It quacks enough like a net.Socket for node:http's client and
 * agents (keep-alive, timeouts, addresses).
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

import { TpmJwtError } from '../errors.js';
import type { NativeContext, NativeTlsSession, NativeTlsStep } from '../native.js';
import { contextOf, preparedKeyOf, type TpmKey } from '../tpm/key.js';

export interface TpmTlsOptions {
  /** PEM: the TPM key's certificate, then its chain (intermediates). */
  certificate: string;
  /** PEM roots to trust for the server instead of the system's (which SSL_CERT_FILE and NODE_EXTRA_CA_CERTS extend). */
  ca?: string;
  /** The name the server's certificate must hold, sent as SNI; default the host connected to. */
  servername?: string;
}

const NOTHING = Buffer.alloc(0);

export class TpmTlsSocket extends Duplex {
  /** What node:https clients read of a TLS socket. */
  readonly encrypted = true;
  readonly #socket: Socket;
  readonly #context: NativeContext;
  readonly #session: NativeTlsSession;
  // Steps run one at a time, in order: each feeds what arrived and what to send.
  #steps: Promise<unknown> = Promise.resolve();
  #established = false;
  readonly #waiting: (() => void)[] = [];

  /** Throws ERR_INVALID_ARGUMENT for a certificate that is not for `key`, before any byte is sent. */
  constructor(key: TpmKey, socket: Socket, options: TpmTlsOptions & { servername: string }) {
    super();
    this.#socket = socket;
    this.#context = contextOf(key);
    const spki = key.publicKey.export({ type: 'spki', format: 'der' });
    this.#session = this.#context.tlsOpen(preparedKeyOf(key), spki, key.publicKey.asymmetricKeyType === 'ec', {
      certificate: options.certificate,
      servername: options.servername,
      ...(options.ca !== undefined && { ca: options.ca }),
    });
    socket.on('data', (data: Buffer) => void this.#step(data, NOTHING));
    // After the steps already queued: what they read comes before the end.
    socket.on('end', () => void this.#steps.then(() => this.push(null)));
    socket.on('error', (err) => this.destroy(err));
    // What arrived just before the close is read first (a reply with Connection: close).
    socket.on('close', () => void this.#steps.then(() => this.destroy()));
    socket.on('timeout', () => this.emit('timeout'));
    if (socket.connecting) socket.once('connect', () => void this.#step(NOTHING, NOTHING));
    else void this.#step(NOTHING, NOTHING);
  }

  /**
   * One step in the addon, after the ones before it; resolves with how much plaintext went
   * out. A failure (the TPM closed under it) destroys the socket with it, and never rejects.
   */
  #step(fromPeer: Buffer, plaintext: Buffer, shutdown = false): Promise<number> {
    const step = this.#steps.then(async () => {
      if (this.destroyed) return 0;
      let result: NativeTlsStep;
      try {
        result = await this.#context.tlsStep(this.#session, fromPeer, plaintext, shutdown);
      } catch (err) {
        this.destroy(err as Error);
        return 0;
      }
      if (result.toPeer.length > 0 && !this.#socket.destroyed) this.#socket.write(result.toPeer);
      if (result.received.length > 0) this.push(result.received);
      if (result.failure) {
        this.destroy(result.failure);
        return 0;
      }
      if (result.established && !this.#established) {
        this.#established = true;
        this.emit('secureConnect');
        this.emit('connect');
        for (const resume of this.#waiting.splice(0)) resume();
      }
      if (result.closed) this.push(null);
      return result.written;
    });
    // A listener that throws (push and emit run them) fails the socket, not every later step.
    this.#steps = step.catch((err: Error) => this.destroy(err));
    return step;
  }

  override _read(): void {
    // Data is pushed as it arrives from the socket.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const send = () =>
      this.#step(NOTHING, chunk).then((written) =>
        callback(
          written === chunk.length || this.destroyed
            ? null
            : new TpmJwtError('ERR_TLS', `TLS sent ${written} of ${chunk.length} bytes`),
        ),
      );
    if (this.#established) void send();
    else this.#waiting.push(send);
  }

  override _final(callback: (error?: Error | null) => void): void {
    void this.#step(NOTHING, NOTHING, true).then(() => {
      this.#socket.end();
      callback();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    // OpenSSL's state goes now, not when the collector finds it (a queued step keeps its own).
    this.#context.tlsRelease(this.#session);
    callback(error);
  }

  // What node:http and its agents call on a socket.
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#socket.setKeepAlive(enable, initialDelay);
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay(noDelay);
    return this;
  }
  setTimeout(timeout: number, callback?: () => void): this {
    this.#socket.setTimeout(timeout);
    if (callback) this.once('timeout', callback);
    return this;
  }
  ref(): this {
    this.#socket.ref();
    return this;
  }
  unref(): this {
    this.#socket.unref();
    return this;
  }
  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.#socket.localPort;
  }
}
