/**
 * Huge page limits (the hugetlb controller): pure parsing of `--hugetlb-limit
 * SIZE:LIMIT`, the kernel's page-size names, and the files that express a limit
 * on v1 (hugetlb.2MB.limit_in_bytes) and v2 (hugetlb.2MB.max).
 */
import { TsmError } from '../errors/errors.js';
import { parseSize } from './size.js';

export interface HugetlbLimit {
  /** The kernel's name of the page size, as in the cgroup file names: "64KB", "2MB", "1GB". */
  pageSize: string;
  /** Bytes of huge pages of that size the container may use; a multiple of the page size (0 forbids them). */
  limitBytes: number;
}

const PAGE_SIZE_NAME = /^[1-9][0-9]{0,4}[KMG]B$/;
const bad = (msg: string, fix: string): TsmError => new TsmError('EINVAL_ARG', msg, { fix });
const KB = 1024;
const MB = 1024 ** 2;
const GB = 1024 ** 3;

/** The kernel's name for a page size in bytes (mm/hugetlb_cgroup.c mem_fmt): 2097152 -> "2MB". */
export function pageSizeName(bytes: number): string {
  if (bytes >= GB) return `${Math.floor(bytes / GB)}GB`;
  if (bytes >= MB) return `${Math.floor(bytes / MB)}MB`;
  return `${Math.floor(bytes / KB)}KB`;
}

/** "2MB", "2M", "2mb", "2048kB", "1G", "1GiB" -> bytes; a power of two of at least 4 KiB. */
export function parsePageSize(input: string): number {
  const m = /^(\d{1,7})\s*([KMG])(?:i?B)?$/i.exec(input.trim());
  const fix = 'name a huge page size such as 2MB or 1GB (see /sys/kernel/mm/hugepages)';
  if (!m) throw bad(`invalid huge page size ${JSON.stringify(input)}`, fix);
  const bytes = Number(m[1]) * { K: KB, M: MB, G: GB }[m[2]!.toUpperCase() as 'K' | 'M' | 'G'];
  if (bytes < 4 * KB || (bytes & (bytes - 1)) !== 0 || bytes > 16 * GB) {
    throw bad(`huge page size ${JSON.stringify(input)} is not a power of two between 4KB and 16GB`, fix);
  }
  return bytes;
}

/** A /sys/kernel/mm/hugepages entry ("hugepages-2048kB") -> its page-size name ("2MB"), or undefined. */
export function pageSizeFromSysfs(entry: string): string | undefined {
  const m = /^hugepages-(\d+)kB$/.exec(entry);
  return m ? pageSizeName(Number(m[1]) * KB) : undefined;
}

/**
 * `--hugetlb-limit 2MB:64m` -> { pageSize: '2MB', limitBytes: 67108864 }. The limit takes the
 * units of --memory, or 0; it must be a whole number of pages (the kernel would round it down).
 */
export function parseHugetlbLimit(input: string): HugetlbLimit {
  const fix = 'use --hugetlb-limit PAGESIZE:LIMIT, e.g. 2MB:64m or 1GB:2g';
  const i = input.indexOf(':');
  if (i <= 0 || i === input.length - 1) throw bad(`invalid --hugetlb-limit ${JSON.stringify(input)}: expected PAGESIZE:LIMIT`, fix);
  const page = parsePageSize(input.slice(0, i));
  const raw = input.slice(i + 1).trim();
  const limitBytes = /^0+$/.test(raw) ? 0 : parseSize(raw);
  const pageSize = pageSizeName(page);
  if (limitBytes % page !== 0) {
    const down = Math.floor(limitBytes / page) * page;
    throw bad(`--hugetlb-limit ${JSON.stringify(input)}: ${limitBytes} bytes is not a whole number of ${pageSize} pages`,
      `use a multiple of ${pageSize}, e.g. ${pageSize}:${shortSize(down || page)}`);
  }
  return { pageSize, limitBytes };
}

/** 2097152 -> "2m", 1073741824 -> "1g": the shortest exact form in --memory's units. */
function shortSize(bytes: number): string {
  for (const [unit, n] of [['g', GB], ['m', MB], ['k', KB]] as const) if (bytes % n === 0) return `${bytes / n}${unit}`;
  return String(bytes);
}

/** Sort by page size and refuse a page size given twice. */
export function canonicalHugetlb(list: HugetlbLimit[]): HugetlbLimit[] {
  const sorted = [...list].sort((a, b) => parsePageSize(a.pageSize) - parsePageSize(b.pageSize));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.pageSize === sorted[i - 1]!.pageSize) {
      throw bad(`--hugetlb-limit gives the ${sorted[i]!.pageSize} page size twice`, 'give each page size once');
    }
  }
  return sorted;
}

export interface HugetlbFile { file: string; value: string; optional?: true }

/**
 * The files for each limit: the fault-time limit, and the reservation limit (.rsvd, kernel
 * >= 5.7) where it exists, so that an over-limit mmap fails rather than a later page fault.
 */
export function hugetlbFiles(list: HugetlbLimit[], version: 'v1' | 'v2'): HugetlbFile[] {
  const suffix = version === 'v1' ? 'limit_in_bytes' : 'max';
  // the page size becomes part of a file name: only the kernel's own names get that far
  const odd = list.find((h) => !PAGE_SIZE_NAME.test(h.pageSize));
  if (odd) throw bad(`huge page size ${JSON.stringify(odd.pageSize)} is not a kernel page-size name`, 'use a name such as 2MB or 1GB');
  return list.flatMap((h) => [
    { file: `hugetlb.${h.pageSize}.${suffix}`, value: String(h.limitBytes) },
    { file: `hugetlb.${h.pageSize}.rsvd.${suffix}`, value: String(h.limitBytes), optional: true as const },
  ]);
}

/** The limit files to read back for the host's page sizes. */
export function hugetlbReadFiles(pageSizes: string[], version: 'v1' | 'v2'): string[] {
  return pageSizes.map((p) => `hugetlb.${p}.${version === 'v1' ? 'limit_in_bytes' : 'max'}`);
}

/**
 * Reverse of hugetlbFiles (only the fault-time limits): "max" and v1's unlimited
 * (at least 2^62) read back as unset.
 */
export function parseHugetlbFiles(files: Record<string, string | undefined>): HugetlbLimit[] {
  const out: HugetlbLimit[] = [];
  for (const [file, value] of Object.entries(files)) {
    const m = /^hugetlb\.(\d+[KMG]B)\.(?:limit_in_bytes|max)$/.exec(file);
    if (!m || value === undefined || !/^\d+$/.test(value) || BigInt(value) >= 1n << 62n) continue;
    out.push({ pageSize: m[1]!, limitBytes: Number(value) });
  }
  return out.sort((a, b) => parsePageSize(a.pageSize) - parsePageSize(b.pageSize));
}
