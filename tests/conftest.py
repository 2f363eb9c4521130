import os

# Keep TensorFlow quiet and deterministic-ish on CPU test machines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402



@pytest.fixture(autouse=True)
def _clear_keras_session():
    keras.backend.clear_session()
    yield
