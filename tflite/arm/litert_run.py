#!/usr/bin/env python3
"""Runs a .tflite model through keras_condcomp.litert on whatever Python runs it.

Meant for the aarch64 Python of tflite/arm/litert_sysroot.sh under qemu-user
(no TensorFlow, no Keras: LiteRT + numpy only), with
$CONDCOMP_TFLITE_OPS pointing at the aarch64 op library:

    litert_run.py MODEL.tflite X.npy OUT.npy [--no-custom-ops] [--threads N]
    litert_run.py MODEL.tflite X.npy OUT.npy --invokes N [--no-custom-ops]

Writes the model's outputs on X (batch X.shape[0], then each example alone,
stacked: both must agree) to OUT.npy and prints the machine, runtime and
library it used. With `--invokes N` (instruction counting,
tflite/arm/litert_insn.py) it instead runs X[:1] once to warm up, then N more
raw `invoke()` calls, and prints the executable mappings of the process
(/proc/self/maps), so the caller can restrict qemu's log to them.
"""

import argparse
import platform

import numpy as np

from keras_condcomp import litert


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("x")
    p.add_argument("out")
    p.add_argument("--no-custom-ops", action="store_true", help="builtin-op model (--dense)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--invokes", type=int, default=None)
    a = p.parse_args()
    x = np.load(a.x)
    interp = litert.Interpreter(a.model, num_threads=a.threads, custom_ops=not a.no_custom_ops)
    if a.invokes is not None:
        np.save(a.out, interp.predict(x[:1]))  # warm-up: allocation, first-invoke packing
        for _ in range(a.invokes):
            interp.invoke()
        with open("/proc/self/maps") as maps:
            for line in maps:
                if " r-xp " in line:
                    print("map", line.strip())
        return
    batched = interp.predict(x)
    single = np.concatenate([interp.predict(x[i:i + 1]) for i in range(len(x))])
    np.save(a.out, np.stack([batched, single]))
    library = None if a.no_custom_ops else litert.library_path()
    print(f"machine {platform.machine()} runtime {interp.runtime} library {library}")


if __name__ == "__main__":
    main()
