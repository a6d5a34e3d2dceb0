/**
 * A rate-limited TCP relay on loopback: put in front of a local host's sshd
 * (a host entry naming the relay's address), it makes that link a slow one, a
 * few MB/s, in each direction, shared by every connection through it. Node's
 * own streams pace the bytes (pieces of at most 16 KiB, each sent when the
 * link's budget allows), so back-pressure reaches the sender as on a real
 * link. The kernel's socket buffers on either side still hold a few hundred
 * KiB in flight: rates are meant to be measured over seconds.
 */
import net from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const PIECE = 16 << 10;

/** One direction of the link: a pacing clock shared by the connections through it. */
class Pacer {
  private free = 0;
  constructor(public bytesPerSecond: number) {}
  /** ms to wait before sending `n` bytes (and books them). */
  book(n: number): number {
    const now = performance.now();
    const start = Math.max(now, this.free);
    this.free = start + (n * 1000) / this.bytesPerSecond;
    return start - now;
  }
}

function paced(p: Pacer, count: (n: number) => void): Transform {
  return new Transform({
    highWaterMark: PIECE,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const send = async () => {
        for (let off = 0; off < chunk.length; off += PIECE) {
          const piece = chunk.subarray(off, off + PIECE);
          const wait = p.book(piece.length);
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          count(piece.length);
          this.push(piece);
        }
      };
      send().then(() => cb(), cb);
    },
  });
}

export interface SlowLink {
  readonly host: string;
  readonly port: number;
  readonly bytesPerSecond: number;
  /** change the rate from now on, both ways (a link that slows down under way) */
  setRate(bytesPerSecond: number): void;
  /** bytes relayed so far, towards the target and back */
  readonly relayed: { up: number; down: number };
  close(): Promise<void>;
}

/** Listen on `listen` (a loopback address, port chosen by the kernel) and relay to `target` at `bytesPerSecond` each way. */
export async function startSlowLink(o: { listen: string; target: { host: string; port: number }; bytesPerSecond: number }): Promise<SlowLink> {
  if (!/^127\./.test(o.listen) || !/^127\./.test(o.target.host)) throw new Error('slow-link: loopback addresses only');
  const up = new Pacer(o.bytesPerSecond);
  const down = new Pacer(o.bytesPerSecond);
  const relayed = { up: 0, down: 0 };
  const sockets = new Set<net.Socket>();
  // half-open: one direction's end must not cut the other while its bytes are still being paced
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const remote = net.connect({ port: o.target.port, host: o.target.host, allowHalfOpen: true });
    for (const s of [client, remote]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    const end = () => {
      client.destroy();
      remote.destroy();
    };
    pipeline(client, paced(up, (n) => (relayed.up += n)), remote).catch(end);
    pipeline(remote, paced(down, (n) => (relayed.down += n)), client).catch(end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, o.listen, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: o.listen,
    port,
    get bytesPerSecond() {
      return up.bytesPerSecond;
    },
    setRate: (bps: number) => {
      up.bytesPerSecond = bps;
      down.bytesPerSecond = bps;
    },
    relayed,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
