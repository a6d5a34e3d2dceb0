import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkArgv,
  cpuinfoCheckArgv,
  cpuinfoDumpArgv,
  dumpArgv,
  restoreArgv,
  type DumpRequest,
  type RestoreRequest,
} from '../../../src/criu/argv.js';
import { isTsmError } from '../../../src/errors/errors.js';

const D = '/var/lib/tsm/ck/images';

test('dumpArgv builds the expected command lines', () => {
  const table: Array<[string, DumpRequest, string[]]> = [
    ['minimal', { pid: 42, imagesDir: D, leaveRunning: false }, ['dump', '--tree', '42', '--images-dir', D, '--log-file', 'dump.log', '-v4']],
    [
      'leave running, work dir, log, verbosity',
      { pid: 42, imagesDir: D, workDir: '/tmp/w', logFile: 'd.log', verbosity: 2, leaveRunning: true },
      ['dump', '--tree', '42', '--images-dir', D, '--work-dir', '/tmp/w', '--log-file', 'd.log', '-v2', '--leave-running'],
    ],
    [
      'container options (as checkpoint.ts passes them)',
      {
        pid: 4242,
        imagesDir: D,
        logFile: 'dump.log',
        leaveRunning: true,
        tcpEstablished: true,
        fileLocks: true,
        freezeCgroup: '/sys/fs/cgroup/freezer/tsmigrate/web',
        manageCgroups: 'soft',
        externals: ['veth[eth0]:tsm-ab12'],
      },
      [
        'dump', '--tree', '4242', '--images-dir', D, '--log-file', 'dump.log', '-v4', '--leave-running',
        '--tcp-established', '--file-locks', '--freeze-cgroup', '/sys/fs/cgroup/freezer/tsmigrate/web',
        '--manage-cgroups=soft', '--external', 'veth[eth0]:tsm-ab12',
      ],
    ],
    [
      'false flags are left out',
      { pid: 7, imagesDir: D, leaveRunning: false, tcpEstablished: false, fileLocks: false, extUnixSk: false, shellJob: false, trackMem: false, externals: [] },
      ['dump', '--tree', '7', '--images-dir', D, '--log-file', 'dump.log', '-v4'],
    ],
    [
      'shell job, ext unix sk, ghost limit, several externals',
      { pid: 7, imagesDir: D, leaveRunning: false, shellJob: true, extUnixSk: true, ghostLimit: 1048576, externals: ['mnt[/data]:data', 'dev[ab12]:/dev/x'], verbosity: 0 },
      [
        'dump', '--tree', '7', '--images-dir', D, '--log-file', 'dump.log', '-v0',
        '--external', 'mnt[/data]:data', '--external', 'dev[ab12]:/dev/x', '--ext-unix-sk', '--shell-job', '--ghost-limit', '1048576',
      ],
    ],
    [
      'pre-dump: no --leave-running, parent relative to the images dir',
      { pid: 9, imagesDir: '/ck/2', prevImagesDir: '/ck/1', preDump: true, leaveRunning: true, trackMem: true },
      ['pre-dump', '--tree', '9', '--images-dir', '/ck/2', '--log-file', 'dump.log', '-v4', '--track-mem', '--prev-images-dir', '../1'],
    ],
    [
      'incremental dump on top of a pre-dump',
      { pid: 9, imagesDir: '/ck/3', prevImagesDir: '/ck/2', leaveRunning: false, trackMem: true, manageCgroups: 'ignore' },
      ['dump', '--tree', '9', '--images-dir', '/ck/3', '--log-file', 'dump.log', '-v4', '--manage-cgroups=ignore', '--track-mem', '--prev-images-dir', '../2'],
    ],
    [
      'streamed to the image streamer',
      { pid: 9, imagesDir: D, leaveRunning: true, tcpEstablished: true, stream: true },
      ['dump', '--tree', '9', '--images-dir', D, '--log-file', 'dump.log', '-v4', '--leave-running', '--tcp-established', '--stream'],
    ],
  ];
  for (const [name, req, want] of table) assert.deepEqual(dumpArgv(req), want, name);
});

test('dumpArgv rejects bad input with EINVAL_ARG', () => {
  const ok: DumpRequest = { pid: 42, imagesDir: D, leaveRunning: false };
  const table: Array<[string, Partial<DumpRequest> & Record<string, unknown>]> = [
    ['pid 0', { pid: 0 }],
    ['negative pid', { pid: -5 }],
    ['pid 1', { pid: 1 }],
    ['fractional pid', { pid: 4.5 }],
    ['NaN pid', { pid: Number.NaN }],
    ['pid as string', { pid: '42' as unknown as number }],
    ['relative images dir', { imagesDir: 'images' }],
    ['empty images dir', { imagesDir: '' }],
    ['NUL in images dir', { imagesDir: '/tmp/a\0b' }],
    ['relative work dir', { workDir: 'w' }],
    ['log file with a slash', { logFile: '../dump.log' }],
    ['log file absolute', { logFile: '/tmp/dump.log' }],
    ['log file looking like an option', { logFile: '-v0' }],
    ['verbosity 5', { verbosity: 5 as 4 }],
    ['relative freeze cgroup', { freezeCgroup: 'sys/fs/cgroup/x' }],
    ['unknown manage-cgroups mode', { manageCgroups: 'props' as 'soft' }],
    ['external starting with -', { externals: ['--leave-running'] }],
    ['empty external', { externals: [''] }],
    ['NUL in external', { externals: ['veth[eth0]:a\0b'] }],
    ['newline in external', { externals: ['veth[eth0]:a\nb'] }],
    ['prev images dir without trackMem', { prevImagesDir: '/ck/1' }],
    ['relative prev images dir', { prevImagesDir: '../1', trackMem: true }],
    ['prev images dir = images dir', { prevImagesDir: D, trackMem: true }],
    ['stream with a pre-dump', { stream: true, preDump: true }],
    ['stream on top of a previous dump', { stream: true, prevImagesDir: '/ck/1', trackMem: true }],
    ['ghost limit 0', { ghostLimit: 0 }],
    ['ghost limit fractional', { ghostLimit: 1.5 }],
  ];
  for (const [name, patch] of table) {
    assert.throws(() => dumpArgv({ ...ok, ...patch } as DumpRequest), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && !e.message.includes('\n'), name);
  }
});

test('restoreArgv builds the expected command lines', () => {
  const base: RestoreRequest = { imagesDir: D, root: '/var/lib/tsm/c/web/rootfs/merged', pidfile: '/run/tsm/web.pid', detached: true, sibling: true };
  const table: Array<[string, RestoreRequest, string[]]> = [
    [
      'minimal',
      base,
      ['restore', '--images-dir', D, '--log-file', 'restore.log', '-v4', '--root', base.root, '--pidfile', base.pidfile, '--restore-detached', '--restore-sibling'],
    ],
    [
      'images from the streamer',
      { ...base, stream: true },
      ['restore', '--images-dir', D, '--log-file', 'restore.log', '-v4', '--root', base.root, '--pidfile', base.pidfile, '--restore-detached', '--restore-sibling', '--stream'],
    ],
    [
      'not detached, not sibling',
      { ...base, detached: false, sibling: false, verbosity: 1, logFile: 'r.log', workDir: '/tmp/w' },
      ['restore', '--images-dir', D, '--work-dir', '/tmp/w', '--log-file', 'r.log', '-v1', '--root', base.root, '--pidfile', base.pidfile],
    ],
    [
      'as restore plan.ts builds it (same host)',
      {
        ...base,
        logFile: 'restore.log',
        leaveStopped: true,
        tcpEstablished: true,
        tcpClose: false,
        fileLocks: true,
        manageCgroups: 'soft',
        cgroupRoot: '/tsmigrate/web',
        inheritFds: [
          { fd: 3, key: 'pipe:[12345]' },
          { fd: 4, key: 'pipe:[12346]' },
        ],
        externals: ['veth[eth0]:tsm-ab12@tsm0'],
      },
      [
        'restore', '--images-dir', D, '--log-file', 'restore.log', '-v4', '--root', base.root, '--pidfile', base.pidfile,
        '--restore-detached', '--restore-sibling', '--tcp-established', '--file-locks', '--manage-cgroups=soft',
        '--cgroup-root', '/tsmigrate/web', '--inherit-fd', 'fd[3]:pipe:[12345]', '--inherit-fd', 'fd[4]:pipe:[12346]',
        '--external', 'veth[eth0]:tsm-ab12@tsm0', '--leave-stopped',
      ],
    ],
    [
      'clone: tcp-close, controller-qualified cgroup root, socket and file keys',
      {
        ...base,
        tcpEstablished: false,
        tcpClose: true,
        cgroupRoot: 'cpu,cpuacct:/tsmigrate/web2',
        inheritFds: [
          { fd: 0, key: 'socket:[99]' },
          { fd: 7, key: 'file:/var/log/app.log' },
        ],
        externals: [],
      },
      [
        'restore', '--images-dir', D, '--log-file', 'restore.log', '-v4', '--root', base.root, '--pidfile', base.pidfile,
        '--restore-detached', '--restore-sibling', '--tcp-close', '--cgroup-root', 'cpu,cpuacct:/tsmigrate/web2',
        '--inherit-fd', 'fd[0]:socket:[99]', '--inherit-fd', 'fd[7]:var/log/app.log',
      ],
    ],
  ];
  for (const [name, req, want] of table) assert.deepEqual(restoreArgv(req), want, name);
});

test('restoreArgv rejects bad input with EINVAL_ARG', () => {
  const ok: RestoreRequest = { imagesDir: D, root: '/r', pidfile: '/p.pid', detached: true, sibling: false };
  const table: Array<[string, Partial<RestoreRequest> & Record<string, unknown>]> = [
    ['relative root', { root: 'rootfs' }],
    ['relative pidfile', { pidfile: 'restored.pid' }],
    ['NUL in root', { root: '/r\0' }],
    ['relative images dir', { imagesDir: './images' }],
    ['tcp established and close', { tcpEstablished: true, tcpClose: true }],
    ['relative cgroup root', { cgroupRoot: 'tsmigrate/web' }],
    ['cgroup root with ..', { cgroupRoot: '/tsmigrate/../../etc' }],
    ['bad manage-cgroups', { manageCgroups: 'all' as 'soft' }],
    ['inherit key with no inode', { inheritFds: [{ fd: 3, key: 'pipe:[]' }] }],
    ['inherit key of another kind', { inheritFds: [{ fd: 3, key: 'anon_inode:[eventfd]' }] }],
    ['inherit key with trailing junk', { inheritFds: [{ fd: 3, key: 'pipe:[12] --leave-running' }] }],
    ['inherit key relative file', { inheritFds: [{ fd: 3, key: 'file:var/log/x' }] }],
    ['inherit key file with ..', { inheritFds: [{ fd: 3, key: 'file:/var/../../x' }] }],
    ['inherit key file /', { inheritFds: [{ fd: 3, key: 'file:/' }] }],
    ['inherit key NUL', { inheritFds: [{ fd: 3, key: 'file:/x\0' }] }],
    ['negative fd', { inheritFds: [{ fd: -1, key: 'pipe:[1]' }] }],
    ['fractional fd', { inheritFds: [{ fd: 1.5, key: 'pipe:[1]' }] }],
    ['fd twice', { inheritFds: [{ fd: 3, key: 'pipe:[1]' }, { fd: 3, key: 'pipe:[2]' }] }],
    ['external option-like', { externals: ['-x'] }],
  ];
  for (const [name, patch] of table) {
    assert.throws(() => restoreArgv({ ...ok, ...patch } as RestoreRequest), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && !e.message.includes('\n'), name);
  }
});

test('checkArgv and cpuinfo argv', () => {
  assert.deepEqual(checkArgv(), ['check']);
  assert.deepEqual(checkArgv('mem_dirty_track'), ['check', '--feature', 'mem_dirty_track']);
  assert.deepEqual(checkArgv('uffd-noncoop'), ['check', '--feature', 'uffd-noncoop']);
  for (const bad of ['', '--all', 'a b', 'UFFD', 'x;y']) assert.throws(() => checkArgv(bad), (e: unknown) => isTsmError(e, 'EINVAL_ARG'), bad);
  assert.deepEqual(cpuinfoDumpArgv('/ck/images'), ['cpuinfo', 'dump', '--images-dir', '/ck/images']);
  assert.deepEqual(cpuinfoCheckArgv('/ck/images'), ['cpuinfo', 'check', '--images-dir', '/ck/images']);
  for (const f of [cpuinfoDumpArgv, cpuinfoCheckArgv]) {
    assert.throws(() => f('images'), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
    assert.throws(() => f(''), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  }
});
