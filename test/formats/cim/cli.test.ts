/** `winsnap cim …` through the real entry point (./bin/winsnap). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { encodeReparsePoint } from '../../../src/formats/wintar/reparse.js';
import { encodeEaBuffer } from '../../../src/formats/wintar/ea.js';
import { tempDir } from '../../helpers/tools.js';

const BIN = fileURLToPath(new URL('../../../bin/winsnap', import.meta.url));

function winsnap(...args: string[]): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args]);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}
function ok(...args: string[]): string {
  const r = winsnap(...args);
  assert.equal(r.status, 0, `winsnap ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

test('winsnap cim ls|stat|cat|tree|info', async () => {
  const d = tempDir('cim-cli-');
  try {
    const w = await CimWriter.create(d.path, 'img');
    await w.createFile('Files', { attributes: 0x10, lastWriteTime: 132000000000000000n });
    await w.addFile('Files\\hello.txt', { attributes: 0x21, lastWriteTime: 132000000000000000n, extendedAttributes: encodeEaBuffer([{ name: 'USER.X', value: Buffer.from('1'), flags: 0 }]) }, Buffer.from('hello world\n'));
    await w.createAlternateStream('Files\\hello.txt:Zone.Identifier', 4);
    await w.write(Buffer.from('zone'));
    await w.closeStream();
    await w.addFile('Files\\link', { attributes: 0x20, reparseData: encodeReparsePoint({ target: 'hello.txt', isMountPoint: false }) });
    await w.createFile('Files\\sub', { attributes: 0x10 });
    await w.addFile('Files\\sub\\deep.bin', { attributes: 0x20 }, Buffer.alloc(10000, 0xab));
    await w.commit();
    const img = join(d.path, 'img.cim');

    const ls = ok('cim', 'ls', img, 'files');
    assert.match(ls, /^----A-L +0 .* link -> hello\.txt *$/m);
    assert.match(ls, /^-R--A-- 12 +2019-04-17T18:40:00\.000Z +hello\.txt \[Zone\.Identifier\] *$/m);
    assert.match(ls, /^D------ - .* sub *$/m);
    const lsj = JSON.parse(ok('cim', 'ls', img, 'Files', '--json')) as { path: string; size: string }[];
    assert.deepEqual(lsj.map((e) => e.path), ['hello.txt', 'link', 'sub']);

    const st = JSON.parse(ok('cim', 'stat', img, 'FILES/HELLO.TXT', '--json'));
    assert.equal(st.size, '12');
    assert.equal(st.attributes, 0x21);
    assert.deepEqual(st.attributeNames, ['READONLY', 'ARCHIVE']);
    assert.deepEqual(st.extendedAttributes, [{ name: 'USER.X', flags: 0, value: Buffer.from('1').toString('base64') }]);
    assert.deepEqual(st.streams, [{ name: 'Zone.Identifier', size: '4', sparse: false }]);
    assert.match(ok('cim', 'stat', img, 'Files\\link'), /Reparse: +tag 0xa000000c -> hello\.txt/);

    assert.equal(ok('cim', 'cat', img, 'Files/hello.txt'), 'hello world\n');
    assert.equal(ok('cim', 'cat', img, 'Files/hello.txt:zone.identifier'), 'zone');
    assert.equal(ok('cim', 'cat', img, 'Files/hello.txt', '--stream', 'Zone.Identifier'), 'zone');
    assert.ok(winsnap('cim', 'cat', img, 'Files/sub/deep.bin').stdout.equals(Buffer.alloc(10000, 0xab)));

    assert.equal(ok('cim', 'tree', img), ['\\', '└── Files\\', '    ├── hello.txt', '    ├── link -> hello.txt', '    └── sub\\', '        └── deep.bin', ''].join('\n'));
    const info = JSON.parse(ok('cim', 'info', img, '--json'));
    assert.equal(info.files, 6);
    assert.equal(info.parents.length, 0);

    // Errors: a missing path, a directory to cat, a corrupt image.
    const nf = winsnap('cim', 'stat', img, 'Files\\nope');
    assert.notEqual(nf.status, 0);
    assert.match(nf.stderr, /Files\\nope does not exist.*not found/);
    assert.match(winsnap('cim', 'cat', img, 'Files').stderr, /is a directory/);
    writeFileSync(join(d.path, 'bad.cim'), Buffer.from('cimfileX' + '\0'.repeat(100)));
    const bad = winsnap('cim', 'ls', join(d.path, 'bad.cim'));
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /bad magic.*invalid argument/);
  } finally {
    d.cleanup();
  }
});
