"""Runs one step of tests/test_backends.py on the Keras backend named by $KERAS_BACKEND.

The backend is fixed when Keras is imported, so each backend runs in a
process of its own:

    KERAS_BACKEND=jax python tests/backend_worker.py forward MODEL.keras X.npy OUT.npz
        loads a condnet saved on another backend and writes its inference
        outputs and gate masks on x;
    KERAS_BACKEND=jax python tests/backend_worker.py policy_optimizer OUT_DIR
        trains with a separate policy optimizer, saves, reloads, and writes
        both optimizers' iteration counts and the weights' agreement;
    KERAS_BACKEND=jax python tests/backend_worker.py tensorflow_only MODEL.keras OUT.json
        writes what the converter and the sparse path say on this backend.

(The README's recipe runs in `benchmarks/training_backends.py --worker`.)
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

import keras_condcomp as kc


def forward(model_path, x_path, out_path):
    model = keras.models.load_model(model_path)
    x = np.load(x_path)
    gates = kc.gate_activations(model, x)
    np.savez(out_path, y=np.asarray(model.predict(x, verbose=0)),
             **{f"mask_{name}": np.asarray(g["mask"]) for name, g in gates.items()},
             backend=keras.backend.backend())


def policy_optimizer(out_dir):
    out_dir = Path(out_dir)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 32)).astype("float32")
    y = (x[:, :4].argmax(1)).astype("int32")
    network = keras.Sequential([
        keras.Input((32,)),
        kc.GatedDense(32, num_blocks=4, activation="relu", top_k=2, seed=1),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model = kc.CondCompModel(network, estimator="reinforce")
    model.compile("adam", "sparse_categorical_crossentropy",
                  policy_optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.build((None, 32))
    policy_before = [keras.ops.convert_to_numpy(v) for v in model._policy_variables()]
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.save(out_dir / "policy_optimizer.keras")
    loaded = keras.models.load_model(out_dir / "policy_optimizer.keras")
    momentum = [np.asarray(v) for v in model.policy_optimizer.variables if "momentum" in v.path]
    loaded_momentum = [np.asarray(v) for v in loaded.policy_optimizer.variables
                       if "momentum" in v.path]
    result = {
        "steps": 2 * 256 // 32,
        "optimizer_iterations": int(model.optimizer.iterations),
        "policy_optimizer_iterations": int(model.policy_optimizer.iterations),
        "loaded_policy_optimizer_iterations": int(loaded.policy_optimizer.iterations),
        "optimizer_variables": len(model.optimizer.variables),
        "loaded_optimizer_variables": len(loaded.optimizer.variables),
        "network_variables": len(model._network_variables()),
        "policy_momentum_nonzero": bool(momentum) and all(np.any(m != 0) for m in momentum),
        "momentum_equal_after_load": len(momentum) == len(loaded_momentum) and all(
            np.array_equal(a, b) for a, b in zip(momentum, loaded_momentum)),
        "policy_moved": any(
            not np.array_equal(a, keras.ops.convert_to_numpy(b))
            for a, b in zip(policy_before, model._policy_variables())),
    }
    (out_dir / "policy_optimizer.json").write_text(json.dumps(result))


def tensorflow_only(model_path, out_path):
    """The messages of the TensorFlow-only parts (converter, sparse path) on this backend."""
    from keras_condcomp.converter import convert
    from keras_condcomp.sparse import SparseInference

    model = keras.models.load_model(model_path)
    messages = {}
    for name, call in (("convert", lambda: convert(model)),
                       ("sparse", lambda: SparseInference(model))):
        try:
            call()
            messages[name] = None
        except RuntimeError as error:
            messages[name] = str(error)
    Path(out_path).write_text(json.dumps(messages))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"forward": forward, "policy_optimizer": policy_optimizer,
     "tensorflow_only": tensorflow_only}[command](*args)
