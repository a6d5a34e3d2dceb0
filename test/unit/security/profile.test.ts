import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capabilityMask, capabilitiesOfMask, DEFAULT_CAPABILITIES, resolveCapabilities } from '../../../src/security/capabilities.js';
import { deviceFromStat, deviceRuleLine, parseDeviceFlag } from '../../../src/security/devices.js';
import { parseSecurityOpts, planSecurity } from '../../../src/security/profile.js';
import { compileSeccomp, DEFAULT_SECCOMP_PROFILE, readSeccompProfile, seccompRulesText } from '../../../src/security/seccomp.js';
import { parseProcStatusSecurity } from '../../../src/security/view.js';

test('capabilities: default set, --cap-add/--cap-drop in Podman\'s order, names in any spelling', () => {
  const cases: Array<[string[], string[], string[]]> = [
    [[], [], [...DEFAULT_CAPABILITIES]],
    [['net_admin'], [], [...DEFAULT_CAPABILITIES, 'NET_ADMIN']],
    [[], ['CAP_CHOWN', 'kill'], DEFAULT_CAPABILITIES.filter((c) => c !== 'CHOWN' && c !== 'KILL')],
    [['NET_RAW'], ['ALL'], ['NET_RAW']],
    [[], ['all'], []],
  ];
  for (const [add, drop, want] of cases) {
    assert.deepEqual([...resolveCapabilities(add, drop)].sort(), [...want].sort(), `add ${add} drop ${drop}`);
  }
  assert.equal(resolveCapabilities(['ALL'], []).length, 41);
  assert.throws(() => resolveCapabilities(['SYS_WIZARD'], []), /--cap-add: unknown capability "SYS_WIZARD"/);
  assert.throws(() => resolveCapabilities([], ['']), /--cap-drop: unknown capability/);
});

test('capability masks round-trip and match the kernel\'s numbering', () => {
  assert.equal(capabilityMask(['CHOWN']), '0x1');
  assert.equal(capabilityMask(['SYS_ADMIN', 'CHECKPOINT_RESTORE']), `0x${((1n << 21n) | (1n << 40n)).toString(16)}`);
  assert.equal(capabilityMask(DEFAULT_CAPABILITIES), '0x800405fb'); // what /proc/PID/status shows for Podman's set
  assert.deepEqual(capabilitiesOfMask('00000000800405fb'), [...DEFAULT_CAPABILITIES].sort((a, b) => capabilitiesOfMask('1ffffffffff').indexOf(a) - capabilitiesOfMask('1ffffffffff').indexOf(b)));
});

test('--security-opt: seccomp and no-new-privileges, Podman\'s spellings; anything else refused', () => {
  assert.deepEqual(parseSecurityOpts([]), { seccomp: 'default', noNewPrivileges: true });
  assert.deepEqual(parseSecurityOpts(['seccomp=unconfined', 'no-new-privileges=false']), { seccomp: 'unconfined', noNewPrivileges: false });
  assert.deepEqual(parseSecurityOpts(['seccomp:/etc/p.json', 'no-new-privileges']), { seccomp: '/etc/p.json', noNewPrivileges: true });
  for (const bad of ['seccomp=rel.json', 'apparmor=unconfined', 'no-new-privileges=maybe', 'seccomp=', 'label=disable']) {
    assert.throws(() => parseSecurityOpts([bad]), /--security-opt/, bad);
  }
});

test('--device HOST[:CONTAINER][:PERMS]', () => {
  assert.deepEqual(parseDeviceFlag('/dev/fuse'), { hostPath: '/dev/fuse', containerPath: '/dev/fuse', access: 'rwm' });
  assert.deepEqual(parseDeviceFlag('/dev/sdb:/dev/xvdb:r'), { hostPath: '/dev/sdb', containerPath: '/dev/xvdb', access: 'r' });
  assert.deepEqual(parseDeviceFlag('/dev/loop0:rw'), { hostPath: '/dev/loop0', containerPath: '/dev/loop0', access: 'rw' });
  for (const bad of ['fuse', '/dev/a:/etc/passwd', '/dev/a:/dev/b:/dev/c', '/dev/../etc/x', '/dev/a::r', '/dev/a:/dev/']) {
    assert.throws(() => parseDeviceFlag(bad), /--device/, bad);
  }
  const chr = { isCharacterDevice: () => true, isBlockDevice: () => false, rdev: (254 << 8) | 3, mode: 0o20660 };
  const d = deviceFromStat(parseDeviceFlag('/dev/x:r'), chr);
  assert.equal(deviceRuleLine(d.rule), 'c 254:3 r');
  assert.deepEqual(d.node, { path: '/dev/x', hostPath: '/dev/x', type: 'c', major: 254, minor: 3, mode: 0o660 });
  // large minor numbers: glibc's encoding (minor bits 8-19 live above the major)
  const big = deviceFromStat(parseDeviceFlag('/dev/y'), { ...chr, rdev: 0x12310345 }); // makedev(259, 0x12345)
  assert.deepEqual([big.rule.major, big.rule.minor], [259, 0x12345]);
  const file = { isCharacterDevice: () => false, isBlockDevice: () => false, rdev: 0, mode: 0o100644 };
  assert.throws(() => deviceFromStat(parseDeviceFlag('/dev/null'), file), /is not a device node/);
});

test('the default seccomp profile compiles, and its capability-gated groups follow the capabilities', () => {
  const profile = readSeccompProfile(DEFAULT_SECCOMP_PROFILE);
  const names = (caps: Parameters<typeof compileSeccomp>[1]) => {
    const c = compileSeccomp(profile, caps);
    return new Set(c.rules.filter((r) => r.action === 'allow' && r.args.length === 0).flatMap((r) => r.names));
  };
  const dflt = names(DEFAULT_CAPABILITIES);
  for (const s of ['read', 'write', 'execve', 'capset', 'setresuid', 'prctl', 'futex', 'clock_gettime']) assert.ok(dflt.has(s), s);
  for (const s of ['mount', 'ptrace', 'init_module', 'finit_module', 'kexec_load', 'bpf', 'unshare', 'setns', 'reboot']) assert.ok(!dflt.has(s), s);
  const admin = names([...DEFAULT_CAPABILITIES, 'SYS_ADMIN', 'SYS_PTRACE']);
  for (const s of ['mount', 'unshare', 'setns', 'ptrace']) assert.ok(admin.has(s), s);
  const c = compileSeccomp(profile, DEFAULT_CAPABILITIES);
  assert.equal(c.defaultAction, 'errno');
  assert.equal(c.defaultErrno, 1);
  // clone without namespace flags only, clone3 ENOSYS (so libc falls back to clone)
  const clone = c.rules.find((r) => r.names.includes('clone'));
  assert.deepEqual(clone?.args, [{ index: 0, op: 'masked_eq', value: String(0x7e020000), valueTwo: '0' }]);
  assert.equal(c.rules.find((r) => r.names.includes('clone3'))?.errno, 38);
  const text = seccompRulesText(c);
  assert.match(text, /^default errno 1\n/);
  assert.match(text, /\nrule allow 1 clone 0 masked_eq 2114060288 0\n/);
  assert.match(text, /\nrule allow 1 read\n/);
});

test('a seccomp profile that does not parse is one clear error', () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /is not a JSON object/],
    [{ defaultAction: 'SCMP_ACT_MAYBE' }, /defaultAction/],
    [{ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read; rm -rf'], action: 'SCMP_ACT_ALLOW' }] }, /is not a syscall name/],
    [{ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 9, op: 'SCMP_CMP_EQ', value: 1 }] }] }, /index.*0\.\.5/],
    [{ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, op: 'SCMP_CMP_EQ', value: -1 }] }] }, /unsigned 64-bit/],
    [{ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_WIZARD'] } }] }, /unknown capability/],
  ];
  for (const [p, re] of cases) assert.throws(() => compileSeccomp(p, DEFAULT_CAPABILITIES), re);
});

test('planSecurity: default, unconfined, privileged, and --privileged refuses narrowing flags', () => {
  const load = () => readSeccompProfile(DEFAULT_SECCOMP_PROFILE);
  const base = { privileged: false, capAdd: [], capDrop: [], securityOpt: [], devices: [] };
  const d = planSecurity(base, load);
  assert.equal(d.noNewPrivileges, true);
  assert.equal(d.cgroupNamespace, true);
  assert.ok(d.maskedPaths.includes('/proc/kcore') && d.readonlyPaths.includes('/proc/sys'));
  assert.ok(d.seccomp.compiled && d.seccomp.source === 'default');
  assert.ok(!d.devices.rules.some((r) => r.type === 'a'));
  const u = planSecurity({ ...base, securityOpt: ['seccomp=unconfined'] }, load);
  assert.equal(u.seccomp.compiled, undefined);
  const p = planSecurity({ ...base, privileged: true }, load);
  assert.equal(p.capabilities.length, 41);
  assert.deepEqual(p.devices.rules.map(deviceRuleLine), ['a *:* rwm']);
  assert.equal(p.cgroupNamespace, false);
  assert.equal(p.sysReadOnly, false);
  assert.throws(() => planSecurity({ ...base, privileged: true, capDrop: ['KILL'] }, load), /--privileged cannot be combined/);
});

test('/proc/PID/status security fields', () => {
  const s = parseProcStatusSecurity('Name:\tsleep\nCapInh:\t0000000000000000\nCapPrm:\t00000000800405fb\nCapEff:\t00000000800405fb\nCapBnd:\t00000000800405fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n');
  assert.deepEqual([...s.effective].sort(), [...DEFAULT_CAPABILITIES].sort());
  assert.equal(s.noNewPrivs, true);
  assert.equal(s.seccompMode, 2);
  assert.equal(s.seccompFilters, 1);
});
