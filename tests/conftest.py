import os

# Keep TensorFlow quiet and deterministic-ish on CPU test machines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The dense op runs small layers on one thread whatever num_threads says (its
# work threshold, tflite/ops/condcomp_tflite_ops.c); the tests' layers are
# small, so 0 (always split) keeps their 2-thread runs on the parallel path.
# test_tflite_ops.py::test_two_threads_same_result also runs the default.
os.environ.setdefault("CONDCOMP_PARALLEL_MIN_BYTES", "0")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clear_keras_session():
    # A fixed seed per test: layers built without one (Keras initializers
    # drawing from the global seed) get the same weights whatever ran before,
    # so a test's outcome does not depend on the order or selection of tests.
    keras.backend.clear_session()
    keras.utils.set_random_seed(1337)
    yield
