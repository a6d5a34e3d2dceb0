// throughput of ssh2 exec channel per cipher against a rig sshd
import { Client } from 'ssh2';
import { readFileSync } from 'node:fs';
const [host, port, key] = process.argv.slice(2);
for (const cipher of ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr']) {
  const c = new Client();
  await new Promise((res, rej) => { c.on('ready', res).on('error', rej).connect({ host, port: Number(port), username: 'root', privateKey: readFileSync(key), hostVerifier: () => true, algorithms: { cipher: [cipher] } }); });
  const ms = await new Promise((res, rej) => c.exec('cat > /dev/null', (err, ch) => {
    if (err) return rej(err);
    const buf = Buffer.alloc(1 << 20, 7); let sent = 0; const total = 256;
    const t = performance.now();
    ch.on('close', () => res(performance.now() - t));
    const pump = () => { while (sent < total) { sent++; if (!ch.write(buf)) { ch.once('drain', pump); return; } } ch.end(); };
    pump();
  }));
  console.log(cipher, (256 / (ms / 1000)).toFixed(0), 'MiB/s');
  c.end();
}
