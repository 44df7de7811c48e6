#!/usr/bin/env python3
# Runs one command and prints its wall time and the peak RSS of it and its children
# (getrusage RUSAGE_CHILDREN), as JSON on fd 3. Used so our code and the native baseline
# are measured the same way.
import json, os, resource, subprocess, sys, time

t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
out = os.fdopen(3, "w")
out.write(json.dumps({"status": rc, "wallSeconds": wall, "maxRssKiB": ru.ru_maxrss,
                      "userSeconds": ru.ru_utime, "sysSeconds": ru.ru_stime}))
out.close()
sys.exit(0)
