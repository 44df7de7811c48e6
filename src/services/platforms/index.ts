/**
 * OCI platforms as containerd handles them (containerd 1.6 platforms/ and the newer
 * github.com/containerd/platforms module): parse `<os>[(<osversion>[+<feature>]*)][/<arch>[/<variant>]]`,
 * normalize aliases, format, and matchers (`only`, `onlyStrict`, `ordered`, `any`, `all`).
 *
 * winsnap runs on any OS but serves Windows hosts, so the "host" that fills in a missing OS
 * or architecture and the default matcher are a configurable target (default
 * windows/amd64), not the machine winsnap runs on. The default matcher prefers
 * `windows/<arch>` whose OS version the host can run (containerd's Windows compatibility
 * rule) and then `linux/amd64` for LCOW, as containerd on Windows does.
 */
import { invalidArgument } from '../errdefs.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

export interface Matcher {
  match(p: Platform): boolean;
}

export interface MatchComparer extends Matcher {
  /** true when p1 is preferred over p2 */
  less(p1: Platform, p2: Platform): boolean;
}

/** The machine images are meant for; fills in missing OS/architecture in `parse`. */
export interface TargetHost {
  os: string;
  architecture: string;
  variant?: string;
  /** Windows build of the host, e.g. 10.0.20348 */
  osVersion?: string;
}

export const DEFAULT_TARGET: TargetHost = { os: 'windows', architecture: 'amd64' };

const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const KNOWN_ARCH = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);

const SPECIFIER_RE = /^[A-Za-z0-9_.-]+$/;
const OS_RE = /^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$/;

export function normalizeOS(os: string, target: TargetHost = DEFAULT_TARGET): string {
  if (os === '') return target.os;
  const l = os.toLowerCase();
  return l === 'macos' ? 'darwin' : l;
}

export function normalizeArch(arch: string, variant: string): [string, string] {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case 'i386':
      a = '386';
      v = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      a = 'amd64';
      if (v === 'v1') v = '';
      break;
    case 'aarch64':
    case 'arm64':
      a = 'arm64';
      if (v === '8' || v === 'v8') v = '';
      break;
    case 'armhf':
      a = 'arm';
      v = 'v7';
      break;
    case 'armel':
      a = 'arm';
      v = 'v6';
      break;
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = `v${v}`;
      break;
  }
  return [a, v];
}

function clean(p: Platform): Platform {
  const out: Platform = { os: p.os, architecture: p.architecture };
  if (p.variant) out.variant = p.variant;
  if (p.osVersion) out.osVersion = p.osVersion;
  if (p.osFeatures && p.osFeatures.length > 0) out.osFeatures = p.osFeatures;
  return out;
}

export function normalize(p: Platform, target: TargetHost = DEFAULT_TARGET): Platform {
  const [architecture, variant] = normalizeArch(p.architecture, p.variant ?? '');
  const features = p.osFeatures && p.osFeatures.length > 0 ? [...new Set(p.osFeatures)].sort() : undefined;
  return clean({ os: normalizeOS(p.os, target), architecture, variant, osVersion: p.osVersion, osFeatures: features });
}

function decodeOption(v: string, spec: string): string {
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    throw invalidArgument(`${JSON.stringify(spec)} has an invalid OS option ${JSON.stringify(v)}`, { platform: spec });
  }
}

const encodeOption = (v: string) => v.replace(/%/g, '%25').replace(/\+/g, '%2B').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\//g, '%2F');

/** Parses a platform specifier (containerd platforms.Parse). */
export function parse(spec: string, target: TargetHost = DEFAULT_TARGET): Platform {
  if (spec.includes('*')) throw invalidArgument(`${JSON.stringify(spec)}: wildcards not yet supported`, { platform: spec });
  const parts = spec.split('/');
  if (parts.length > 3) throw invalidArgument(`${JSON.stringify(spec)}: cannot parse platform specifier`, { platform: spec });
  const osm = OS_RE.exec(parts[0]!);
  if (!osm) {
    throw invalidArgument(`${JSON.stringify(parts[0])} is an invalid OS component of ${JSON.stringify(spec)}`, { platform: spec });
  }
  for (const part of parts.slice(1)) {
    if (!SPECIFIER_RE.test(part)) {
      throw invalidArgument(`${JSON.stringify(part)} is an invalid component of ${JSON.stringify(spec)}`, { platform: spec });
    }
  }
  const os = normalizeOS(osm[1]!, target);
  const osVersion = decodeOption(osm[2] ?? '', spec);
  const osFeatures = osm[3] ? osm[3].slice(1).split('+').map((f) => decodeOption(f, spec)) : undefined;
  const withOs = (p: Platform) => clean({ ...p, osVersion, osFeatures });
  if (parts.length === 1) {
    if (KNOWN_OS.has(os)) {
      const variant = target.architecture === 'arm' && target.variant !== 'v7' ? target.variant : undefined;
      return withOs({ os, architecture: target.architecture, variant });
    }
    if (osVersion || osFeatures) throw invalidArgument(`${JSON.stringify(spec)}: unknown operating system`, { platform: spec });
    let [architecture, variant] = normalizeArch(parts[0]!, '');
    if (architecture === 'arm' && variant === 'v7') variant = '';
    if (KNOWN_ARCH.has(architecture)) return clean({ os: target.os, architecture, variant });
    throw invalidArgument(`${JSON.stringify(spec)}: unknown operating system or architecture`, { platform: spec });
  }
  if (parts.length === 2) {
    let [architecture, variant] = normalizeArch(parts[1]!, '');
    if (architecture === 'arm' && variant === 'v7') variant = '';
    return withOs({ os, architecture, variant });
  }
  let [architecture, variant] = normalizeArch(parts[1]!, parts[2]!);
  if (architecture === 'arm64' && variant === '') variant = 'v8';
  return withOs({ os, architecture, variant });
}

/** `os/arch[/variant]` ("unknown" without an OS). */
export function format(p: Platform): string {
  if (!p.os) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Like format, with `(osversion+features)` after the OS when present. */
export function formatAll(p: Platform): string {
  if (!p.os) return 'unknown';
  let opts = encodeOption(p.osVersion ?? '');
  for (const f of [...(p.osFeatures ?? [])].sort()) opts += `+${encodeOption(f)}`;
  const os = opts ? `${p.os}(${opts})` : p.os;
  return [os, p.architecture, p.variant].filter(Boolean).join('/');
}

interface WinVersion {
  major: number;
  minor: number;
  build: number;
}

function winVersion(v: string | undefined): WinVersion | undefined {
  if (!v) return undefined;
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (!m) return undefined;
  const [major, minor, build] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major > 255 || minor > 255 || build > 65535) return undefined;
  return { major, minor, build };
}

/** Windows Server 2022 (ltsc2022): from here on hosts run older stable-ABI LTSC images. */
const WS2022_BUILD = 20348;
const COMPAT_LTSC = [WS2022_BUILD];

/** containerd's Windows host/container OS version compatibility rule. */
export function windowsHostCanRun(host: string, container: string): boolean {
  const h = winVersion(host);
  if (!h || !container) return true;
  const c = winVersion(container);
  if (!c) return false;
  if (h.major !== c.major || h.minor !== c.minor) return false;
  if (h.build < WS2022_BUILD) return h.build === c.build;
  let ltsc = 0;
  for (let i = COMPAT_LTSC.length - 1; i >= 0; i--) {
    if (h.build >= COMPAT_LTSC[i]!) {
      ltsc = COMPAT_LTSC[i]!;
      break;
    }
  }
  return c.build >= ltsc && c.build <= h.build;
}

/** Exact OS/arch/variant match (plus Windows OS version compatibility and feature subset). */
export function newMatcher(p: Platform): Matcher {
  const want = normalize(p);
  return {
    match(other) {
      const n = normalize(other);
      if (n.os !== want.os || n.architecture !== want.architecture || (n.variant ?? '') !== (want.variant ?? '')) return false;
      if (want.os === 'windows' && !windowsHostCanRun(want.osVersion ?? '', other.osVersion ?? '')) return false;
      const feats = n.osFeatures ?? [];
      const have = new Set(want.osFeatures ?? []);
      return feats.every((f) => have.has(f));
    },
  };
}

function vector(p: Platform): Platform[] {
  const out = [p];
  const base = { os: p.os, osVersion: p.osVersion, osFeatures: p.osFeatures };
  if (p.architecture === 'amd64') {
    const v = Number.parseInt((p.variant ?? '').replace(/^v/, ''), 10);
    if (Number.isInteger(v) && v > 1) for (let i = v - 1; i >= 1; i--) out.push(clean({ ...base, architecture: 'amd64', variant: `v${i}` }));
    out.push(clean({ ...base, architecture: '386' }));
  } else if (p.architecture === 'arm') {
    const v = Number.parseInt((p.variant ?? '').replace(/^v/, ''), 10);
    if (Number.isInteger(v) && v > 5) for (let i = v - 1; i >= 5; i--) out.push(clean({ ...base, architecture: 'arm', variant: `v${i}` }));
  } else if (p.architecture === 'arm64') {
    out.push(...vector(clean({ ...base, architecture: 'arm', variant: p.variant || 'v8' })));
  }
  return out;
}

/** Matches the platforms in order of preference. */
export function ordered(...ps: Platform[]): MatchComparer {
  const ms = ps.map(newMatcher);
  return {
    match: (p) => ms.some((m) => m.match(p)),
    less(p1, p2) {
      for (const m of ms) {
        const a = m.match(p1);
        const b = m.match(p2);
        if (a && !b) return true;
        if (a || b) return false;
      }
      return false;
    },
  };
}

/** The platform and what it can also run (amd64 → 386, arm64 → arm/v8…), in that order. */
export function only(p: Platform): MatchComparer {
  return ordered(...vector(normalize(p)));
}

export function onlyStrict(p: Platform): MatchComparer {
  return ordered(normalize(p));
}

/** Any of the platforms, without preference among them. */
export function any(...ps: Platform[]): MatchComparer {
  const ms = ps.map(newMatcher);
  return {
    match: (p) => ms.some((m) => m.match(p)),
    less(p1, p2) {
      const a = ms.some((m) => m.match(p1));
      const b = ms.some((m) => m.match(p2));
      return a && !b;
    },
  };
}

export const all: MatchComparer = { match: () => true, less: () => false };

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * What containerd on a Windows host pulls: `windows/<arch>` images the host can run,
 * newest OS version first, then `linux/amd64` (LCOW).
 */
export function defaultWindowsMatcher(target: TargetHost = DEFAULT_TARGET): MatchComparer {
  const win = newMatcher({ os: 'windows', architecture: target.architecture, variant: target.variant, osVersion: target.osVersion });
  const lcow = newMatcher({ os: 'linux', architecture: 'amd64' });
  const rank = (p: Platform) => (win.match(p) ? 0 : lcow.match(p) ? 1 : 2);
  return {
    match: (p) => rank(p) < 2,
    less(p1, p2) {
      const r1 = rank(p1);
      const r2 = rank(p2);
      if (r1 !== r2) return r1 < r2;
      if (r1 === 0) return compareVersions(p1.osVersion ?? '', p2.osVersion ?? '') > 0;
      return false;
    },
  };
}
