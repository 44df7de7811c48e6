#!/usr/bin/env node
// Writes dist/main.cjs.cache, V8's code cache of the CLI bundle (see bin/bundle.cjs): loads the
// bundle without a cache, runs in this process the commands whose start-up matters most (a
// layer conversion in its modes on a small generated tar, raw → VHDX, vhdx info, help), and
// saves the script's cache, which then holds the bytecode of every function they ran. Run by
// scripts/build.mjs in a process of its own, with no V8 flags (V8 rejects a cache made under
// other flags; bin/winsnap sets its one flag only after the bundle is loaded).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODE_CACHE, loadBundle } from '../bin/bundle.cjs';

/** A ustar header block for `name` (type '0' file, '5' directory, '2' symlink, '1' hard link). */
function header(name, type, size = 0, link = '') {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  const octal = (v, off, len) => b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
  octal(type === '5' ? 0o755 : 0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(1_700_000_000, 136, 12);
  b.write(type, 156, 1, 'latin1');
  b.write(link, 157, 100, 'utf8');
  b.write('ustar\0' + '00', 257, 8, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

function sampleTar() {
  const parts = [header('app/', '5'), header('app/etc/', '5')];
  for (let i = 0; i < 40; i++) {
    const size = [0, 17, 100, 4096, 5000, 70_000][i % 6];
    parts.push(header(`app/f${i}`, '0', size), Buffer.alloc(Math.ceil(size / 512) * 512, i % 3 === 0 ? 0 : 0x41 + (i % 26)));
  }
  parts.push(header('app/etc/link', '2', 0, '../f1'), header('app/hard', '1', 0, 'app/f2'), header('app/.wh.gone', '0'));
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const dir = mkdtempSync(join(tmpdir(), 'winsnap-code-cache-'));
try {
  const { exports, script } = loadBundle({ codeCache: false });
  const tar = join(dir, 'layer.tar');
  writeFileSync(tar, sampleTar());
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, Buffer.concat([Buffer.alloc(1 << 20, 7), Buffer.alloc(1 << 20)]));
  const quiet = process.stdout.write.bind(process.stdout);
  process.stdout.write = () => true; // the commands' own output is not wanted here
  try {
    for (const argv of [
      ['convert', 'tar2vhd', '-i', tar, '-o', join(dir, 'a.vhd')],
      ['convert', 'tar2vhd', '-i', tar, '-o', join(dir, 'b.vhd'), '--verity', '--max-size', '128G', '--json'],
      ['convert', 'tar2vhd', '-i', tar, '-o', join(dir, 'c.vhd'), '--inline', '--whiteouts'],
      ['vhdx', 'convert', raw, join(dir, 'd.vhdx')],
      ['vhdx', 'info', join(dir, 'd.vhdx')],
      ['--help'],
    ]) {
      const code = await exports.main(argv);
      if (code !== 0 && argv[0] !== '--help') throw new Error(`winsnap ${argv.join(' ')} exited with ${code}`);
    }
  } finally {
    process.stdout.write = quiet;
  }
  writeFileSync(CODE_CACHE, script.createCachedData());
} finally {
  rmSync(dir, { recursive: true, force: true });
}
