#!/usr/bin/env python3
"""Independent oracle: lists a tar with Python's tarfile as JSON (one object per member).

Strings that may hold arbitrary bytes (names, PAX values) are given as hex of their
bytes (tarfile decodes with surrogateescape, so .encode('utf-8', 'surrogateescape')
gives the bytes back).
"""
import hashlib
import json
import sys
import tarfile


def b(s):
    return s.encode("utf-8", "surrogateescape").hex()


def main():
    path = sys.argv[1]
    out = []
    with tarfile.open(path, "r:", errorlevel=2) as tf:
        for m in tf:
            rec = {
                "name": b(m.name),
                "type": m.type.decode("latin1"),
                "size": m.size,
                "mode": m.mode,
                "uid": m.uid,
                "gid": m.gid,
                "uname": b(m.uname),
                "gname": b(m.gname),
                "linkname": b(m.linkname),
                "mtime": repr(m.mtime),
                "devmajor": m.devmajor,
                "devminor": m.devminor,
                "pax": [[k, b(v)] for k, v in m.pax_headers.items()],
                "offset": m.offset,
            }
            if m.isreg():
                f = tf.extractfile(m)
                rec["sha256"] = hashlib.sha256(f.read()).hexdigest()
            out.append(rec)
        glob = {k: b(v) for k, v in tf.pax_headers.items()}
        json.dump({"members": out, "global": glob}, sys.stdout)


main()
