# N-API addon for the Linux syscalls Node lacks (mount, umount2, mknod, l*xattr,
# setns, unshare, utimensat, bpf for cgroup device programs).
# Build: npx node-gyp rebuild --directory native
# Output: native/build/Release/tsm_native.node (loaded by src/native/native.ts).
{
  'targets': [
    {
      'target_name': 'tsm_native',
      'sources': ['addon/tsm_native.c'],
      'defines': ['NAPI_VERSION=8'],
      'cflags': [
        '-O2',
        '-Wall',
        '-Wextra',
        '-Werror=implicit-function-declaration',
        '-fstack-protector-strong',
        '-U_FORTIFY_SOURCE',
        '-D_FORTIFY_SOURCE=2',
        '-fPIC',
        '-fvisibility=hidden',
      ],
      'ldflags': ['-Wl,-z,relro,-z,now', '-Wl,-z,noexecstack'],
      # node's common.gypi appends -O3 for Release; keep the -O2 asked for above.
      'configurations': {
        'Release': {
          'cflags!': ['-O3'],
        },
      },
    },
  ],
}
