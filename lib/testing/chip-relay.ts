/**
 * A chip relay: a loopback TCTI endpoint in front of a software TPM that makes it answer
 * like a chip. It forwards swtpm's protocol (one TPM command, one response, on the
 * server port; the control port passed through), and per command it can
 * - take as long as a chip would (a latency profile; one command at a time, as a chip
 *   runs them, whoever sent it),
 * - answer in the TPM's place with a response code (TPM_RC_RETRY, _YIELDED, _TESTING,
 *   _NV_RATE, _LOCKOUT, any), cut the connection before the command reaches the TPM or
 *   halfway through its response, or stall,
 * - and record it: name, response code, when it started and ended, which fault it met.
 * A test then asserts "this token took one Sign and no CreatePrimary".
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

import { commandCode, commandName, responseCode, type TpmCommandName, type TpmResponseName } from './commands.js';
import { freePortPair } from './ports.js';
import { CHIP_PROFILES, type ChipProfileName, type LatencyTable } from './profiles.js';

/** What a fault does to the commands it matches, and which ones. */
export interface Fault {
  /** The command it applies to (name or code); every command when absent. */
  command?: TpmCommandName | number;
  /** Only the Nth matching command (1 is the first), counted from when the fault was set. */
  nth?: number;
  /** Every Nth matching command. */
  every?: number;
  /** A share (0 to 1) of matching commands, drawn from the relay's seeded generator. */
  share?: number;
  /** At most this many times in all. */
  times?: number;
  /** Answer with this response code instead of the TPM (a name of TPM_RESPONSES, or a number). */
  rc?: TpmResponseName | number;
  /** Cut the connection: before the command reaches the TPM, or after, halfway through its response. */
  drop?: 'before' | 'mid-response';
  /** Hold the command this long before it goes on (or is answered by `rc`). */
  stallMs?: number;
}

/** One command that crossed the relay. */
export interface CommandRecord {
  /** Its name ("Sign"), or hex code. */
  readonly command: string;
  readonly code: number;
  /** The response code the client got; undefined when the connection was cut first. */
  readonly rc: number | undefined;
  /** Milliseconds since the relay started: when the command arrived, and when it was answered or cut. */
  readonly start: number;
  readonly end: number;
  /** The fault that met it, described. */
  readonly fault?: string;
  /** The time the profile charged it: what a chip would have spent on it. */
  readonly tpmMs: number;
}

export interface ChipRelayOptions {
  /** The swtpm to relay to, as its TCTI (`swtpm:host=127.0.0.1,port=N`). */
  tcti: string;
  /** Per-command latency: a profile's name or a table; none by default. */
  profile?: ChipProfileName | LatencyTable;
  faults?: readonly Fault[];
  /** Seed for `share` faults, so a run can be replayed. */
  seed?: number;
  /**
   * Called with each command before the relay handles it; the relay waits for a returned
   * promise (a test holding a command in flight, say).
   */
  onCommand?: (command: { name: string; code: number; bytes: Buffer }) => void | Promise<void>;
  /** Keep every byte both ways (what a wiretap on the TPM link would see): `captured()`. */
  capture?: boolean;
  /**
   * Where the relay listens: its server port, and the control port above it. Loopback on a
   * free pair by default; another host (a container's 0.0.0.0) gives the TPM to every
   * machine that reaches it, as swtpm's own bindaddr does.
   */
  listen?: { host?: string; port?: number };
}

export interface ChipRelay {
  /** The tctildr string that goes through the relay. */
  readonly tcti: string;
  /** Every command so far, in the order they were answered. */
  readonly log: readonly CommandRecord[];
  /** How many commands (of one kind, or all) crossed the relay. */
  count(command?: TpmCommandName | number): number;
  /** The sum of the profile's latency over the commands recorded: TPM time, not wall time. */
  tpmTime(): number;
  /** Forgets the log. */
  clear(): void;
  /** Replaces the faults; their counts start again. */
  setFaults(faults: readonly Fault[]): void;
  setProfile(profile: ChipProfileName | LatencyTable | undefined): void;
  /** With `capture`: every byte that crossed, both ways. */
  captured(): Buffer;
  close(): Promise<void>;
}

/** A bare TPM response: the header alone, with `rc`. */
function responseWith(rc: number): Buffer {
  const out = Buffer.alloc(10);
  out.writeUInt16BE(0x8001, 0); // TPM_ST_NO_SESSIONS
  out.writeUInt32BE(10, 2);
  out.writeUInt32BE(rc, 6);
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A seeded generator (mulberry32), so that `share` faults replay. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fault with its counts: commands it matched, and times it fired. */
interface ArmedFault {
  readonly fault: Fault;
  readonly code: number | undefined;
  matched: number;
  fired: number;
}

function describeFault(fault: Fault): string {
  if (fault.drop) return `drop ${fault.drop}`;
  const parts = [];
  if (fault.stallMs !== undefined) parts.push(`stall ${fault.stallMs} ms`);
  if (fault.rc !== undefined)
    parts.push(`rc ${typeof fault.rc === 'number' ? `0x${fault.rc.toString(16)}` : fault.rc}`);
  return parts.join(', ');
}

/** Frames TPM messages out of a byte stream: a 10-byte header whose size field counts the whole. */
class Framer {
  #pending = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const frames: Buffer[] = [];
    while (this.#pending.length >= 10) {
      const size = this.#pending.readUInt32BE(2);
      if (size < 10) throw new Error('a TPM header with a size under 10 bytes');
      if (this.#pending.length < size) break;
      frames.push(this.#pending.subarray(0, size));
      this.#pending = this.#pending.subarray(size);
    }
    return frames;
  }
}

/** Starts a relay in front of the swtpm `options.tcti` names (its port and the control port above). */
export async function startChipRelay(options: ChipRelayOptions): Promise<ChipRelay> {
  if (/(^|[:,])path=/.test(options.tcti))
    throw new TypeError('a chip relay forwards TCP: give a swtpm TCTI with host and port');
  const host = /host=([^,]+)/.exec(options.tcti)?.[1] ?? '127.0.0.1';
  const target = Number(/port=(\d+)/.exec(options.tcti)?.[1] ?? 2321);
  const origin = performance.now();
  const now = () => performance.now() - origin;
  const random = seeded(options.seed ?? 1);
  const log: CommandRecord[] = [];
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  let latency: LatencyTable | undefined;
  let armed: ArmedFault[] = [];
  // When the simulated chip is next free: it runs one command at a time.
  let busyUntil = 0;

  const relay = {
    setProfile(profile: ChipProfileName | LatencyTable | undefined) {
      latency = typeof profile === 'string' ? CHIP_PROFILES[profile] : profile;
      if (typeof profile === 'string' && !latency) throw new TypeError(`unknown chip profile ${profile}`);
    },
    setFaults(faults: readonly Fault[]) {
      armed = faults.map((fault) => ({
        fault,
        code: fault.command === undefined ? undefined : commandCode(fault.command),
        matched: 0,
        fired: 0,
      }));
    },
  };
  relay.setProfile(options.profile);
  relay.setFaults(options.faults ?? []);

  const costOf = (name: string) => (latency ? ((latency as Record<string, number>)[name] ?? latency.default) : 0);

  /** The first armed fault that fires for this command, its counts updated. */
  const faultFor = (code: number): Fault | undefined => {
    // Every matching fault counts the command, whichever fires: each one's nth and every
    // count the commands it matches since it was set.
    const matching = armed.filter((entry) => entry.code === undefined || entry.code === code);
    for (const entry of matching) entry.matched++;
    for (const entry of matching) {
      const { nth, every, share, times } = entry.fault;
      if (times !== undefined && entry.fired >= times) continue;
      if (nth !== undefined && entry.matched !== nth) continue;
      if (every !== undefined && entry.matched % every !== 0) continue;
      if (share !== undefined && random() >= share) continue;
      entry.fired++;
      return entry.fault;
    }
    return undefined;
  };

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  const serverPort = createServer((client) => {
    track(client);
    let upstream: Socket | undefined;
    const upstreamFrames = new Framer();
    const waiting: ((response: Buffer | undefined) => void)[] = [];
    const exchange = (command: Buffer): Promise<Buffer | undefined> => {
      // A client gone while its command waited (a stall, a hook) must not open a
      // connection nobody will close: swtpm would serve it and no one else.
      if (client.destroyed) return Promise.resolve(undefined);
      if (!upstream) {
        upstream = createConnection({ host, port: target });
        track(upstream);
        upstream.on('data', (chunk: Buffer) => {
          let frames: Buffer[];
          try {
            frames = upstreamFrames.push(chunk);
          } catch {
            upstream?.destroy();
            return;
          }
          for (const frame of frames) waiting.shift()?.(frame);
        });
        upstream.once('close', () => {
          for (const resolve of waiting.splice(0)) resolve(undefined);
          client.destroy();
        });
      }
      return new Promise((resolve) => {
        waiting.push(resolve);
        upstream!.write(command);
      });
    };

    const handle = async (bytes: Buffer): Promise<void> => {
      const code = bytes.readUInt32BE(6);
      const name = commandName(code);
      const start = now();
      await options.onCommand?.({ name, code, bytes });
      const fault = faultFor(code);
      // A chip starts a command when it is free and takes its time; answering in the
      // TPM's place ("retry") takes the profile's default.
      const tpmMs = fault?.rc !== undefined ? costOf('default') : costOf(name);
      const record = (rc: number | undefined) =>
        log.push({ command: name, code, rc, start, end: now(), tpmMs, ...(fault && { fault: describeFault(fault) }) });
      if (fault?.stallMs) await sleep(fault.stallMs);
      if (fault?.drop === 'before') {
        record(undefined);
        client.destroy();
        return;
      }
      const response = fault?.rc !== undefined ? responseWith(responseCode(fault.rc)) : await exchange(bytes);
      if (!response) {
        record(undefined);
        return;
      }
      const done = Math.max(start, busyUntil) + tpmMs;
      busyUntil = done;
      // A timer may fire a millisecond early by this clock: wait until the chip is done.
      while (done > now()) await sleep(done - now());
      if (client.destroyed) return;
      const rc = response.readUInt32BE(6);
      if (fault?.drop === 'mid-response') {
        client.write(response.subarray(0, Math.floor(response.length / 2)));
        record(undefined);
        client.destroy();
        return;
      }
      if (options.capture) chunks.push(Buffer.from(response));
      client.write(response);
      record(rc);
    };

    // Commands on one connection are handled in order.
    let chain = Promise.resolve();
    const commands = new Framer();
    client.on('data', (chunk: Buffer) => {
      if (options.capture) chunks.push(Buffer.from(chunk));
      let frames: Buffer[];
      try {
        frames = commands.push(chunk);
      } catch {
        client.destroy();
        return;
      }
      for (const frame of frames) {
        // A command the relay cannot handle (a hook that threw) cuts the connection, as a
        // broken link would; it never goes unanswered or unhandled.
        chain = chain.then(() => handle(frame)).catch(() => void client.destroy());
      }
    });
    client.once('close', () => upstream?.destroy());
  });

  // The control port carries no TPM commands (locality, reset): passed through as it is.
  const controlPort = createServer((client) => {
    const upstream = createConnection({ host, port: target + 1 });
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });

  const listenHost = options.listen?.host ?? '127.0.0.1';
  const port = options.listen?.port ?? (await freePortPair());
  const listen = (server: Server, at: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at, listenHost, () => resolve());
    });
  await listen(serverPort, port);
  try {
    await listen(controlPort, port + 1);
  } catch (err) {
    serverPort.close();
    throw err;
  }

  return {
    // A wildcard address is reached on this machine at loopback.
    tcti: `swtpm:host=${listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost},port=${port}`,
    log,
    count(command) {
      if (command === undefined) return log.length;
      const code = commandCode(command);
      return log.filter((entry) => entry.code === code).length;
    },
    tpmTime() {
      return log.reduce((sum, entry) => sum + entry.tpmMs, 0);
    },
    clear() {
      log.length = 0;
      chunks.length = 0;
    },
    setFaults: relay.setFaults,
    setProfile: relay.setProfile,
    captured: () => Buffer.concat(chunks),
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([serverPort, controlPort].map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}
