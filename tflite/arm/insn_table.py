#!/usr/bin/env python3
"""Table of emulated aarch64 instruction counts of one gated dense layer vs active blocks.

Runs `condcomp_driver bench dense D UNITS K ACTIVE BATCH 0` (built by
tflite/arm/build.sh) under qemu-user for each ACTIVE, counting executed guest
instructions with insn_count.py. REPS 0: the layer runs once (the driver's
first, MAC-counting call) and the plain dense comparison loop is skipped.

    python tflite/arm/insn_table.py                      # 1024 -> 1024, K 16, batch 1
    python tflite/arm/insn_table.py --d 2048 --units 2048 --active 16 8 4 2

The driver's input x is dense (random normal, one input block = all of D), and
exactly ACTIVE of the K output blocks are switched on by the policy bias, so
this measures output-block gating only (the bench has no input-sparsity
option). "op" counts the functions matching --match (the gate, the block
kernel, the activation); "process" is everything the process executed, most
of it the driver's random weight initialization, which does not depend on
ACTIVE. These are qemu-emulated instruction counts, not phone time.
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
import insn_count  # noqa: E402  (this directory is sys.path[0] for the script)

# Every function of the gated dense op: gate (policy product, sigmoid), block kernels, activation.
DEFAULT_MATCH = r"dense|gate|activation|expf"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--driver", default=os.path.join(HERE, "..", "..", "build", "arm",
                                                    "condcomp_driver"))
    p.add_argument("--qemu", default=os.environ.get("QEMU_AARCH64", "qemu-aarch64"))
    p.add_argument("--d", type=int, default=1024, help="input dim")
    p.add_argument("--units", type=int, default=1024)
    p.add_argument("--k", type=int, default=16, help="number of output blocks")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--active", type=int, nargs="+", default=[16, 8, 4, 2])
    p.add_argument("--match", default=DEFAULT_MATCH)
    a = p.parse_args()
    if not os.path.isfile(a.driver):
        p.error(f"{a.driver} not found: run bash tflite/arm/build.sh first")
    rows = []
    for active in a.active:
        argv = [a.driver, "bench", "dense", a.d, a.units, a.k, active, a.batch, 0]
        _, per_func = insn_count.count([str(x) for x in argv], qemu=a.qemu)
        op = sum(n for f, n in per_func.items() if re.search(a.match, f))
        rows.append((active, op, sum(per_func.values())))
        print(f"# active {active}: op {op}, process {rows[-1][2]}", file=sys.stderr)
    base_op, base_total = rows[0][1], rows[0][2]
    print(f"GatedDense {a.d} -> {a.units}, K={a.k}, batch {a.batch}, dense input; "
          f"qemu-aarch64 emulated instruction counts (not phone time)")
    print(f"op functions: /{a.match}/\n")
    print(f"| active blocks (tau) | op instructions | ratio to {rows[0][0]} on "
          f"| ideal ratio | process total | process ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for active, op, total in rows:
        print(f"| {active} of {a.k} ({active / a.k:g}) | {op:,} | {op / base_op:.3f} "
              f"| {active / rows[0][0]:.3f} | {total:,} | {total / base_total:.4f} |")


if __name__ == "__main__":
    main()
