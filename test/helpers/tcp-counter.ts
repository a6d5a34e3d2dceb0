import net from 'node:net';
import { eventually } from './cli.js';

/** A TCP server (python3, Debian image) sending 1, 2, 3, ... one per line to its one client, reading what it says. */
export const COUNTER_SERVER = [
  'import socket, time, threading',
  's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7000)); s.listen(1)',
  'c, _ = s.accept()',
  'threading.Thread(target=lambda: [None for _ in iter(lambda: c.recv(65536), b"")], daemon=True).start()',
  'n = 0',
  'while True:',
  '    n += 1',
  '    c.sendall(f"{n}\\n".encode())',
  '    time.sleep(0.05)',
].join('\n');

export interface CounterClient {
  readonly lines: number[];
  closed(): boolean;
  stop(): void;
}

/** Connect to COUNTER_SERVER on ip:7000 and collect its numbers; the client talks too (a ping every 100 ms), as real ones do. */
export async function connectCounter(ip: string): Promise<CounterClient> {
  const sock = await eventually(
    () => new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect({ host: ip, port: 7000 }, () => resolve(s));
      s.once('error', () => resolve(undefined));
    }),
    20000,
    200,
  );
  const lines: number[] = [];
  let closed = false;
  let buf = '';
  sock.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const p of parts) lines.push(Number(p));
  });
  sock.on('close', () => (closed = true));
  const talk = setInterval(() => sock.write('ping\n'), 100);
  return { lines, closed: () => closed, stop: () => { clearInterval(talk); sock.destroy(); } };
}
