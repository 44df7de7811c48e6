/**
 * Test helpers around the external hive tools (libhivex-bin: hivexml, hivexsh; libregf-utils:
 * regfinfo, regfexport) plus an independent model of what those tools print for a tree we
 * built ourselves. Nothing here uses the code under test to compute expectations.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { runTool } from '../../helpers/tools.js';

// ---- a tiny XML reader for hivexml output ----------------------------------------------------

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === 'amp') return '&';
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

interface XmlEl {
  tag: string;
  attrs: Record<string, string>;
  children: XmlEl[];
  text: string;
}

function parseXml(xml: string): XmlEl {
  const root: XmlEl = { tag: '#root', attrs: {}, children: [], text: '' };
  const stack: XmlEl[] = [root];
  const re = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>|<\?[^>]*\?>|([^<]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(xml)) !== null) {
    if (m[5] !== undefined) {
      stack[stack.length - 1].text += unescapeXml(m[5]);
      continue;
    }
    if (m[2] === undefined) continue; // <?xml ...?>
    if (m[1] === '/') {
      const el = stack.pop();
      assert.equal(el?.tag, m[2], 'hivexml output: mismatched closing tag');
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of m[3].matchAll(/([\w:.-]+)="([^"]*)"/g)) attrs[a[1]] = unescapeXml(a[2]);
    const el: XmlEl = { tag: m[2], attrs, children: [], text: '' };
    stack[stack.length - 1].children.push(el);
    if (m[4] !== '/') stack.push(el);
  }
  assert.equal(stack.length, 1, 'hivexml output: unclosed elements');
  return root;
}

// ---- normalized views ---------------------------------------------------------------------------

/** How hivexml shows a value. */
export interface XValue {
  name: string;
  kind: string;
  /** Text for strings, decimal for int32/int64, hex for base64-encoded kinds, items joined by '|' for lists. */
  repr: string;
}

export interface XKey {
  name: string;
  mtime?: string;
  values: XValue[];
  children: XKey[];
}

/** Long representations are compared by length and SHA-256 so failures stay readable. */
export function shorten(repr: string): string {
  return repr.length <= 160 ? repr : `${repr.length} chars sha256:${createHash('sha256').update(repr).digest('hex').slice(0, 16)}`;
}

function xvalue(el: XmlEl): XValue {
  const name = el.attrs.default === '1' ? '' : (el.attrs.key ?? '');
  const kind = el.attrs.type;
  let repr: string;
  if (kind === 'string-list') repr = el.children.filter((c) => c.tag === 'string').map((c) => c.text).join('|');
  else if (el.attrs.encoding === 'base64') repr = Buffer.from(el.attrs.value ?? '', 'base64').toString('hex');
  else repr = el.attrs.value ?? '';
  return { name, kind, repr: shorten(repr) };
}

function xkey(el: XmlEl): XKey {
  const k: XKey = { name: el.attrs.name, values: [], children: [] };
  for (const c of el.children) {
    if (c.tag === 'mtime') k.mtime = c.text;
    else if (c.tag === 'value') k.values.push(xvalue(c));
    else if (c.tag === 'node') k.children.push(xkey(c));
  }
  return k;
}

/** Runs hivexml on a hive file; fails the test on a non-zero exit or any stderr output. */
export function hivexmlTree(file: string): XKey {
  // hivexml opens /dev/stdout by name, which fails on the socket pairs Node uses for pipes:
  // give it a regular file.
  const outFile = `${file}.xml`;
  const fd = openSync(outFile, 'w');
  let r;
  try {
    r = runTool('hivexml', [file], { stdio: ['ignore', fd, 'pipe'] });
  } finally {
    closeSync(fd);
  }
  assert.equal(r.stderr, '', `hivexml printed to stderr: ${r.stderr}`);
  assert.equal(r.status, 0, 'hivexml failed');
  const doc = parseXml(readFileSync(outFile, 'utf8'));
  rmSync(outFile);
  const hive = doc.children.find((c) => c.tag === 'hive');
  assert.ok(hive, 'hivexml: no <hive> element');
  const node = hive.children.find((c) => c.tag === 'node');
  assert.ok(node, 'hivexml: no root <node>');
  return xkey(node);
}

/** regfexport's view: key paths in export order, each with class name and values (name, type, size). */
export interface RKey {
  path: string;
  className?: string;
  values: { name: string; type: number; size: number }[];
}

const REGF_TYPE: Record<string, number> = {
  REG_NONE: 0,
  REG_SZ: 1,
  REG_EXPAND_SZ: 2,
  REG_BINARY: 3,
  REG_DWORD_LITTLE_ENDIAN: 4,
  REG_DWORD_BIG_ENDIAN: 5,
  REG_LINK: 6,
  REG_MULTI_SZ: 7,
  REG_RESOURCE_LIST: 8,
  REG_FULL_RESOURCE_DESCRIPTOR: 9,
  REG_RESOURCE_REQUIREMENTS_LIST: 10,
  REG_QWORD_LITTLE_ENDIAN: 11,
};

/** Runs regfexport; fails the test on a non-zero exit or any stderr output. */
export function regfexportKeys(file: string): RKey[] {
  const r = runTool('regfexport', [file]);
  assert.equal(r.stderr, '', `regfexport printed to stderr: ${r.stderr}`);
  assert.equal(r.status, 0, 'regfexport failed');
  const out: RKey[] = [];
  let cur: RKey | undefined;
  let val: { name: string; type: number; size: number } | undefined;
  for (const line of r.stdout.toString('utf8').split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^Key path: (.*)$/.exec(line))) {
      cur = { path: m[1], values: [] };
      out.push(cur);
    } else if ((m = /^Class name: (.*)$/.exec(line)) && cur) {
      cur.className = m[1];
    } else if ((m = /^Value: \d+ (.*)$/.exec(line)) && cur) {
      val = { name: m[1] === '(default)' ? '' : m[1], type: -1, size: -1 };
      cur.values.push(val);
    } else if ((m = /^Type: .*\((REG_\w+)\)$/.exec(line)) && val) {
      val.type = REGF_TYPE[m[1]];
    } else if ((m = /^Type: unknown: 0x([0-9a-f]+)$/.exec(line)) && val) {
      val.type = parseInt(m[1], 16);
    } else if ((m = /^Data size: (\d+)$/.exec(line)) && val) {
      val.size = Number(m[1]);
    }
  }
  return out;
}

/** regfinfo must accept the file without errors and name the version. */
export function regfinfoVersion(file: string): string {
  const r = runTool('regfinfo', [file]);
  assert.equal(r.stderr, '', `regfinfo printed to stderr: ${r.stderr}`);
  assert.equal(r.status, 0, 'regfinfo failed');
  const text = r.stdout.toString('utf8');
  assert.doesNotMatch(text, /corrupted/i, 'regfinfo reports corruption');
  const m = /Version:\s+(\d+\.\d+)/.exec(text);
  assert.ok(m, 'regfinfo: no version line');
  return m[1];
}

/** Runs a hivexsh script (one command per line) against a hive; returns stdout. */
export function hivexsh(file: string, script: string[], opts: { write?: boolean; dir: string }): string {
  const scriptFile = join(opts.dir, `hivexsh-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(scriptFile, script.join('\n') + '\n');
  const args = [...(opts.write ? ['-w'] : []), '-f', scriptFile, file];
  const r = runTool('hivexsh', args);
  assert.equal(r.stderr, '', `hivexsh printed to stderr: ${r.stderr}`);
  assert.equal(r.status, 0, 'hivexsh failed');
  return r.stdout.toString('utf8');
}

// ---- the independent model: what the tools should show for a tree we built ----------------------

export interface MValue {
  name: string;
  type: number;
  data: Buffer;
}
export interface MKey {
  name: string;
  values?: MValue[];
  subkeys?: MKey[];
  lastWritten?: bigint;
  className?: Buffer;
}

/** ASCII-only uppercase order (tests that need sorting use ASCII names or compare to tool output). */
export function asciiUpperCompare(a: string, b: string): number {
  const A = a.replace(/[a-z]/g, (c) => c.toUpperCase());
  const B = b.replace(/[a-z]/g, (c) => c.toUpperCase());
  for (let i = 0; i < Math.min(A.length, B.length); i++) {
    const d = A.charCodeAt(i) - B.charCodeAt(i);
    if (d !== 0) return d;
  }
  return A.length - B.length;
}

function utf16Until00(data: Buffer): string {
  let end = 0;
  while (end + 1 < data.length && (data[end] !== 0 || data[end + 1] !== 0)) end += 2;
  return data.toString('utf16le', 0, end);
}

const FILETIME_UNIX_EPOCH = 116444736000000000n;

/** What hivexml prints for a value (for data the generators produce: well-formed UTF-16, exact int sizes). */
export function expectedXValue(v: MValue): XValue {
  const x = expectedXValueLong(v);
  return { ...x, repr: shorten(x.repr) };
}

function expectedXValueLong(v: MValue): XValue {
  const hex = v.data.toString('hex');
  switch (v.type) {
    case 0:
      return { name: v.name, kind: 'none', repr: hex };
    case 1:
      return { name: v.name, kind: 'string', repr: utf16Until00(v.data) };
    case 2:
      return { name: v.name, kind: 'expand', repr: utf16Until00(v.data) };
    case 6:
      return { name: v.name, kind: 'link', repr: utf16Until00(v.data) };
    case 3:
      return { name: v.name, kind: 'binary', repr: hex };
    case 4:
      return { name: v.name, kind: 'int32', repr: String(v.data.readInt32LE(0)) };
    case 5:
      return { name: v.name, kind: 'int32', repr: String(v.data.readInt32BE(0)) };
    case 11:
      return { name: v.name, kind: 'int64', repr: String(v.data.readBigInt64LE(0)) };
    case 7: {
      // hivex splits the whole buffer at each UTF-16 NUL, so the terminating empty string shows.
      const items: string[] = [];
      let p = 0;
      while (p < v.data.length) {
        let e = p;
        while (e + 1 < v.data.length && (v.data[e] !== 0 || v.data[e + 1] !== 0)) e += 2;
        items.push(v.data.toString('utf16le', p, e));
        p = e + 2;
      }
      return { name: v.name, kind: 'string-list', repr: items.join('|') };
    }
    case 8:
      return { name: v.name, kind: 'resource-list', repr: hex };
    case 9:
      return { name: v.name, kind: 'resource-description', repr: hex };
    case 10:
      return { name: v.name, kind: 'resource-requirements', repr: hex };
    default:
      return { name: v.name, kind: 'unknown', repr: hex };
  }
}

function isoFromFiletime(ft: bigint): string {
  // hivex: seconds = filetime / 10^7 - 11644473600 (integer division first).
  const secs = ft / 10000000n - FILETIME_UNIX_EPOCH / 10000000n;
  return new Date(Number(secs) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The hivexml view expected for a model tree: subkeys in uppercase-name order, values in order. */
export function expectedXKey(k: MKey, compare: (a: string, b: string) => number = asciiUpperCompare): XKey {
  const out: XKey = {
    name: k.name,
    values: (k.values ?? []).map(expectedXValue),
    children: [...(k.subkeys ?? [])].sort((a, b) => compare(a.name, b.name)).map((s) => expectedXKey(s, compare)),
  };
  if (k.lastWritten !== undefined && k.lastWritten !== 0n) out.mtime = isoFromFiletime(k.lastWritten);
  return out;
}

/** hivexml omits mtime for a zero timestamp and prints seconds only: drop mtimes when the model has none. */
export function stripMtimes(k: XKey): XKey {
  return { name: k.name, values: k.values, children: k.children.map(stripMtimes) };
}

/** regfexport's expected listing for a model tree (depth-first, uppercase order). */
export function expectedRKeys(k: MKey, compare: (a: string, b: string) => number = asciiUpperCompare, prefix = ''): RKey[] {
  const path = prefix === '' ? k.name : `${prefix}\\${k.name}`;
  const me: RKey = { path, values: (k.values ?? []).map((v) => ({ name: v.name, type: v.type, size: v.data.length })) };
  if (k.className !== undefined && k.className.length > 0) me.className = k.className.toString('utf16le');
  const out = [me];
  for (const s of [...(k.subkeys ?? [])].sort((a, b) => compare(a.name, b.name))) out.push(...expectedRKeys(s, compare, path));
  return out;
}
