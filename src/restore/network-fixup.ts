import { execa } from 'execa';
import type { NetworkPlan } from '../network/setup.js';

/**
 * A clone restored beside its original comes back with the original's address
 * on eth0 (CRIU restores the interface as dumped); give it its own before it runs.
 */
export async function readdMoveIp(pid: number, net: NetworkPlan): Promise<void> {
  if (!net.ip || net.prefix === undefined) return;
  const nsenter = (args: string[]) => execa('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'ip', ...args]);
  await nsenter(['addr', 'flush', 'dev', 'eth0']);
  await nsenter(['addr', 'add', `${net.ip}/${net.prefix}`, 'dev', 'eth0']);
  if (net.gateway) await nsenter(['route', 'replace', 'default', 'via', net.gateway, 'dev', 'eth0']);
}
