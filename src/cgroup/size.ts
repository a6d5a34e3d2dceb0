/** Byte sizes as users write them (--memory, --hugetlb-limit, --device-read-bps). */
import { TsmError } from '../errors/errors.js';

const UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512m", "1g", "64k", "1048576", "1.5G", "2GiB" -> bytes (binary units, case-insensitive). */
export function parseSize(input: string): number {
  const s = String(input).trim();
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i.exec(s);
  const fix = 'use a positive size such as 64k, 512m, 1g or a byte count';
  if (!m) throw new TsmError('EINVAL_ARG', `invalid size ${JSON.stringify(input)}`, { fix });
  const unit = (m[2] ?? m[3] ?? 'b').toLowerCase();
  const n = Math.floor(Number(m[1]) * (UNITS[unit] ?? 1));
  if (!Number.isSafeInteger(n)) throw new TsmError('EINVAL_ARG', `size ${JSON.stringify(input)} is too large (max 2^53-1 bytes)`, { fix });
  if (n <= 0) throw new TsmError('EINVAL_ARG', `size ${JSON.stringify(input)} must be greater than 0`, { fix });
  return n;
}

