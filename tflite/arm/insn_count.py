#!/usr/bin/env python3
"""Counts the aarch64 instructions a program executes under qemu-user, per function.

Debian's qemu-user ships no TCG plugins (no libinsn.so), so this uses qemu's own
logging instead: `-d in_asm,exec,nochain` prints every translated block once
(with its instructions) and one `Trace` line each time a block runs; chaining is
switched off so that every executed block is logged. The dynamic instruction
count of a function is the sum, over its blocks' executions, of the block's
instruction count. Blocks are attributed to the ELF symbol qemu names in the
Trace line, so inlined code counts toward the function it was inlined into.

These are *emulated guest* instruction counts: they say how much work the
aarch64 code does (and compare dense against gated runs exactly), not how long
a phone takes (no caches, no pipeline, no memory bandwidth).

Usage:
    insn_count.py [--qemu qemu-aarch64] [--match REGEX] -- ./binary args...
Prints a JSON object {"total": N, "functions": {name: count}} on stdout.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

_TB_START = re.compile(r"^0x([0-9a-f]+):\s")
_TRACE = re.compile(
    r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\]\s*(\S*)")


def count(argv, qemu="qemu-aarch64", match=None, env=None, qemu_args=(), wrapper=(),
          stdout=None):
    """Runs `argv` under qemu with block logging and returns (total, per-function Counter).

    `qemu_args` go to qemu before the program (e.g. `-L root`, `-dfilter
    ranges`), `wrapper` before qemu (e.g. `setarch -R`); `stdout` is a file
    object for the program's output (default: discarded).
    """
    pattern = re.compile(match) if match else None
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "qemu.log")
        os.mkfifo(fifo)
        cmd = (list(wrapper) + [qemu, "-d", "in_asm,exec,nochain", "-D", fifo]
               + list(qemu_args) + list(argv))
        proc = subprocess.Popen(cmd, stdout=stdout or subprocess.DEVNULL, env=env)
        tb_size = {}  # guest pc of a block -> instructions in it
        per_func = Counter()
        current_pc = None
        try:
            with open(fifo, "r", errors="replace") as log:
                for line in log:
                    if line.startswith("Trace"):
                        m = _TRACE.match(line)
                        if not m:
                            continue
                        name = m.group(2) or "?"
                        if pattern is not None and not pattern.search(name):
                            continue
                        per_func[name] += tb_size.get(int(m.group(1), 16), 0)
                    elif line.startswith("IN:"):
                        current_pc = None
                    else:
                        m = _TB_START.match(line)
                        if m:
                            pc = int(m.group(1), 16)
                            if current_pc is None:
                                current_pc = pc
                                tb_size[pc] = 0
                            tb_size[current_pc] += 1
        finally:
            rc = proc.wait()
        if rc != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited with {rc}")
    return sum(per_func.values()), per_func


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", default=os.environ.get("QEMU_AARCH64", "qemu-aarch64"))
    parser.add_argument("--match", default=None, help="only count functions whose name matches")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        parser.error("give the program to run after --")
    total, per_func = count(argv, qemu=args.qemu, match=args.match)
    json.dump({"total": total, "functions": dict(per_func.most_common(args.top))},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
