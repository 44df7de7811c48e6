/**
 * Expected values from containerd's platforms_test.go / compare_test.go (1.6 and the
 * containerd/platforms module), with the target host fixed to windows/amd64 where
 * containerd would use the running machine.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { kindOf } from '../../../src/services/errdefs.js';
import {
  defaultWindowsMatcher,
  format,
  formatAll,
  normalize,
  only,
  onlyStrict,
  ordered,
  parse,
  windowsHostCanRun,
  type Platform,
} from '../../../src/services/platforms/index.js';

describe('platforms: parse / format / normalize (containerd cases)', () => {
  const cases: Array<[string, Platform, string, string[]?]> = [
    ['linux/arm64', { os: 'linux', architecture: 'arm64' }, 'linux/arm64', ['linux/aarch64', 'linux/aarch64/v8', 'linux/arm64/v8']],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'linux/arm64/v8'],
    ['linux/arm', { os: 'linux', architecture: 'arm' }, 'linux/arm', ['linux/arm/v7', 'linux/armhf', 'linux/arm/7']],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }, 'linux/arm/v6', ['linux/armel']],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm/v7', ['linux/arm', 'linux/armhf']],
    ['arm', { os: 'windows', architecture: 'arm' }, 'windows/arm'],
    ['armel', { os: 'windows', architecture: 'arm', variant: 'v6' }, 'windows/arm/v6'],
    ['armhf', { os: 'windows', architecture: 'arm' }, 'windows/arm'],
    ['Aarch64', { os: 'windows', architecture: 'arm64' }, 'windows/arm64'],
    ['x86_64', { os: 'windows', architecture: 'amd64' }, 'windows/amd64'],
    ['Linux/x86_64', { os: 'linux', architecture: 'amd64' }, 'linux/amd64'],
    ['i386', { os: 'windows', architecture: '386' }, 'windows/386'],
    ['linux', { os: 'linux', architecture: 'amd64' }, 'linux/amd64'],
    ['s390x', { os: 'windows', architecture: 's390x' }, 'windows/s390x'],
    ['linux/s390x', { os: 'linux', architecture: 's390x' }, 'linux/s390x'],
    ['macOS', { os: 'darwin', architecture: 'amd64' }, 'darwin/amd64'],
    ['windows', { os: 'windows', architecture: 'amd64' }, 'windows/amd64'],
    ['windows(10.0.17763)/amd64', { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763' }, 'windows/amd64'],
    ['windows(10.0.17763+win32k)/amd64', { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763', osFeatures: ['win32k'] }, 'windows/amd64'],
  ];
  for (const [input, expected, formatted, matches] of cases) {
    test(input, () => {
      const p = parse(input);
      assert.deepEqual(p, expected);
      assert.equal(format(p), formatted);
      const m = onlyStrict(p);
      assert.ok(m.match(p));
      for (const alt of matches ?? []) {
        const [os, architecture, variant] = alt.split('/');
        assert.ok(m.match({ os: os!, architecture: architecture!, variant }), `${input} matches ${alt}`);
      }
    });
  }

  test('formatAll keeps OS version and sorted features', () => {
    assert.equal(formatAll({ os: 'windows', architecture: 'amd64', osVersion: '10.0.17763', osFeatures: ['z', 'win32k'] }), 'windows(10.0.17763+win32k+z)/amd64');
    assert.equal(formatAll({ os: '', architecture: '' }), 'unknown');
  });

  test('malformed specifiers are InvalidArgument', () => {
    for (const bad of ['*', 'linux/*', '', 'linux//amd64', 'linux/amd64/v8/extra', 'lin ux', 'unknownthing', 'linux/$']) {
      assert.throws(() => parse(bad), (e: Error) => kindOf(e) === 'InvalidArgument', bad);
    }
  });

  test('normalize aliases', () => {
    assert.deepEqual(normalize({ os: 'Linux', architecture: 'x86_64', variant: 'v1' }), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(normalize({ os: 'linux', architecture: 'aarch64', variant: '8' }), { os: 'linux', architecture: 'arm64' });
  });
});

describe('platforms: matchers', () => {
  test('only() accepts what the platform can run, in order (compare_test.go)', () => {
    const amd = only({ os: 'linux', architecture: 'amd64' });
    assert.ok(amd.match({ os: 'linux', architecture: '386' }));
    assert.ok(!amd.match({ os: 'linux', architecture: 'arm64' }));
    assert.ok(amd.less({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: '386' }));
    const v3 = only({ os: 'linux', architecture: 'amd64', variant: 'v3' });
    assert.ok(v3.match({ os: 'linux', architecture: 'amd64', variant: 'v2' }) && v3.match({ os: 'linux', architecture: 'amd64' }));
    const arm64 = only({ os: 'linux', architecture: 'arm64' });
    for (const v of ['v8', 'v7', 'v6', 'v5']) assert.ok(arm64.match({ os: 'linux', architecture: 'arm', variant: v }), v);
    const armv6 = only({ os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.ok(!armv6.match({ os: 'linux', architecture: 'arm', variant: 'v7' }));
    assert.ok(armv6.match({ os: 'linux', architecture: 'arm', variant: 'v5' }));
  });

  test('ordered() prefers earlier platforms', () => {
    const m = ordered({ os: 'windows', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64' });
    const list: Platform[] = [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }, { os: 'windows', architecture: 'amd64' }];
    const sorted = list.filter((p) => m.match(p)).sort((a, b) => (m.less(a, b) ? -1 : m.less(b, a) ? 1 : 0));
    assert.deepEqual(sorted.map(format), ['windows/amd64', 'linux/amd64']);
  });

  test('Windows host/container compatibility (containerd platform_windows_compat rules)', () => {
    assert.ok(windowsHostCanRun('10.0.17763', '10.0.17763.1234'));
    assert.ok(!windowsHostCanRun('10.0.17763', '10.0.20348'));
    assert.ok(windowsHostCanRun('10.0.26100', '10.0.20348'));
    assert.ok(!windowsHostCanRun('10.0.26100', '10.0.17763'));
    assert.ok(!windowsHostCanRun('10.0.20348', '10.0.26100'));
    assert.ok(windowsHostCanRun('10.0.20348', ''));
    assert.ok(windowsHostCanRun('', '10.0.17763'));
  });

  test('the default matcher prefers runnable windows images, newest first, then linux/amd64 (LCOW)', () => {
    const m = defaultWindowsMatcher({ os: 'windows', architecture: 'amd64', osVersion: '10.0.26100' });
    const manifests: Platform[] = [
      { os: 'linux', architecture: 'amd64' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.5000' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.100' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.26100.9' },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.26100.10' },
      { os: 'linux', architecture: 'arm64' },
    ];
    const picked = manifests.filter((p) => m.match(p)).sort((a, b) => (m.less(a, b) ? -1 : m.less(b, a) ? 1 : 0));
    assert.deepEqual(picked.map(formatAll), [
      'windows(10.0.26100.10)/amd64',
      'windows(10.0.26100.9)/amd64',
      'windows(10.0.20348.100)/amd64',
      'linux/amd64',
    ]);
  });

  test('property: parse(format(p)) is normalize(p) for known OS/arch', () => {
    const os = fc.constantFrom('linux', 'windows', 'darwin', 'freebsd');
    const arch = fc.constantFrom('amd64', 'arm64', 'arm', '386', 's390x', 'ppc64le', 'riscv64');
    fc.assert(
      fc.property(os, arch, fc.constantFrom('', 'v5', 'v6', 'v7', 'v8'), (o, a, v) => {
        const variant = a === 'arm' ? v || undefined : undefined;
        const p = normalize({ os: o, architecture: a, variant });
        const back = parse(format(p));
        if (a === 'arm64' && variant === undefined) assert.deepEqual(back, p);
        else assert.deepEqual(normalize(back), p);
        assert.equal(format(parse(format(p))), format(p));
      }),
      { numRuns: 300 },
    );
  });
});
