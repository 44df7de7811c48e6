#!/usr/bin/env python3
"""Builds the source tree the interop tests archive with GNU tar, bsdtar and Python.

Deterministic content; sub-second mtimes; a binary user xattr; unicode and long names;
symlinks (short and long targets), a hard link, a FIFO, an empty file, a multi-block file.
Usage: make_tree.py DIR [--no-long] (--no-long leaves out names USTAR cannot hold).
"""
import os
import random
import sys

root = os.path.join(sys.argv[1], "tree")
no_long = "--no-long" in sys.argv
os.makedirs(os.path.join(root, "sub"))
rnd = random.Random(1234)


def write(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return p


small = write("small.txt", b"hello\n")
write("empty", b"")
write("sub/big.bin", bytes(rnd.getrandbits(8) for _ in range(300 * 1024 + 17)))
write("\u00fcn\u00efc\u00f8d\u00e9-\u65e5\u672c\u8a9e.txt", "unicode \u2713\n".encode())
if not no_long:
    write("d" * 60 + "/" + "n" * 120 + ".txt", b"long name\n")
    write("/".join(["p" * 50] * 5) + "/" + "q" * 90, b"very long name\n")
    os.symlink("t" * 150, os.path.join(root, "longlink"))
os.symlink("small.txt", os.path.join(root, "link"))
os.link(small, os.path.join(root, "hard"))
os.mkfifo(os.path.join(root, "fifo"))
try:
    os.setxattr(small, "user.bin", bytes([0, 1, 2, 0xFF, 0x0A, 0x3D]))
except OSError:
    pass
ns = 1700000000_123456789
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for n in filenames + dirnames:
        p = os.path.join(dirpath, n)
        os.utime(p, ns=(ns, ns), follow_symlinks=False)
        ns += 1_000_001
os.utime(root, ns=(ns, ns))
