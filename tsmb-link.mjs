import { mkdtempSync, readFileSync, promises as fs } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import ssh2 from 'ssh2';
import { MoveRig } from './dist/bench/lib/move-rig.js';
import { sshPeer } from './dist/src/move/connect.js';
import { linkTime } from './dist/bench/lib/move-plain.js';
os.setPriority(-10);
process.on('SIGTERM', () => console.log('got SIGTERM'));
const base = mkdtempSync('/var/tmp/tsmb-link-');
const rig = new MoveRig(base + '/rig');
const N = 512 << 20;
const chunk = randomBytes(1 << 20);
try {
  const h = await rig.start('peer', '127.0.0.5', base + '/config.yaml');
  console.log('rig up');
  const raw = (cipher) => new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    let neg = '';
    c.on('ready', () => c.exec('cat >/dev/null', (err, ch) => {
      if (err) return reject(err);
      const send = (n) => new Promise((res) => { let left = n; const pump = () => { while (left > 0) { left -= chunk.length; if (!ch.write(chunk)) return ch.once('drain', pump); } res(); }; pump(); });
      (async () => {
        await send(8 << 20);
        const t0 = performance.now();
        await send(N);
        ch.end();
        ch.on('close', () => { resolve({ cipher: neg, MBps: Math.round(N / 1e6 / ((performance.now() - t0) / 1000)) }); c.end(); });
      })();
    })).on('error', reject).connect({
      host: h.addr, port: h.port, username: 'root', privateKey: readFileSync(h.identity),
      hostVerifier: () => true, ...(cipher ? { algorithms: { cipher: [cipher] } } : {}),
      debug: (m) => { if (/C->S cipher|Cipher \(C->S\)|cipher: /i.test(m) && !neg) neg = m.slice(0, 100); },
    });
  });
  console.log('ssh2 raw exec default:', await raw());
  console.log('ssh2 raw exec aes128-gcm:', await raw('aes128-gcm@openssh.com'));
  console.log('ssh2 raw exec chacha20:', await raw('chacha20-poly1305@openssh.com'));
  const conn = await sshPeer(base + '/config.yaml', 'peer')();
  await conn.agent.hello({ protocol: 1, tool: 'tsmigrate', version: 'x' });
  const t = await linkTime(conn.agent, N);
  console.log('agent probe:', Math.round(N / 1e6 / (t.ms / 1000)), 'MB/s');
  await conn.close();
  await fs.writeFile('/dev/shm/tsmb-link-data', Buffer.concat(Array.from({ length: 512 }, () => chunk)));
  for (const c of [[], ['-c', 'aes128-gcm@openssh.com']]) {
    const t0 = performance.now();
    const r = spawnSync('sh', ['-c', `ssh -i ${h.identity} -p ${h.port} -o UserKnownHostsFile=${h.knownHosts} -o BatchMode=yes ${c.join(' ')} root@${h.addr} 'cat >/dev/null' < /dev/shm/tsmb-link-data`]);
    const ms = performance.now() - t0;
    const t1 = performance.now();
    spawnSync('sh', ['-c', `ssh -i ${h.identity} -p ${h.port} -o UserKnownHostsFile=${h.knownHosts} -o BatchMode=yes ${c.join(' ')} root@${h.addr} true`]);
    const hs = performance.now() - t1;
    console.log(`openssh ${c.join(' ') || 'default (chacha20)'}: ${Math.round(ms)} ms incl. handshake ${Math.round(hs)} ms -> ${Math.round(N / 1e6 / ((ms - hs) / 1000))} MB/s`, r.status);
  }
} finally {
  await fs.rm('/dev/shm/tsmb-link-data', { force: true });
  console.log(await rig.stopAll());
  await fs.rm(base, { recursive: true, force: true });
}
