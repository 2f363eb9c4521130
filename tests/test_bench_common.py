"""benchmarks/bench_common.py: what the timing programs share."""

import subprocess
import sys

import numpy as np
import pytest
from script_helpers import REPO, load_script


def test_importing_it_loads_no_tensorflow():
    # The programs import bench_common first and call quiet_stderr() before
    # anything loads TensorFlow: an import at its top level would undo that.
    probe = ("import sys; sys.path.insert(0, 'benchmarks'); import bench_common; "
             "print(sorted(m for m in ('tensorflow', 'keras', 'keras_condcomp') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_command_line_names_the_program_and_a_forced_kernel(monkeypatch):
    bench_common = load_script("benchmarks/bench_common.py")
    monkeypatch.delenv("CONDCOMP_KERNEL_ISA", raising=False)
    assert bench_common.command_line("efficiency.py", ["runs", "--batches", 1]) == \
        "python benchmarks/efficiency.py runs --batches 1"
    monkeypatch.setenv("CONDCOMP_KERNEL_ISA", "avx2")
    assert bench_common.command_line("benchmark.py", []) == \
        "CONDCOMP_KERNEL_ISA=avx2 python benchmarks/benchmark.py"


@pytest.mark.parametrize("batch, count", [(1, 5), (3, 4), (8, 3)])
def test_cycled_batches_and_image_stream(batch, count):
    bench_common = load_script("benchmarks/bench_common.py")
    pool = np.arange(10, dtype=np.float32)[:, None]
    batches = bench_common.cycled_batches(pool, batch, count)
    assert len(batches) == count and all(b.shape == (batch, 1) for b in batches)
    # Rows are taken in turn; a batch running off the end of the pool is its start.
    for i, b in enumerate(batches):
        start = (i * batch) % len(pool)
        want = pool[start:start + batch] if start + batch <= len(pool) else pool[:batch]
        np.testing.assert_array_equal(b, want)
    stream = bench_common.image_stream(np.arange(40.0).reshape(20, 2), batch, count=2)
    assert [s.flags["C_CONTIGUOUS"] for s in stream] == [True, True]
    np.testing.assert_array_equal(stream[1], np.arange(40.0).reshape(20, 2)[batch:2 * batch])
