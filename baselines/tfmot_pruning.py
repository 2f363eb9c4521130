"""Static magnitude-pruning baseline (tensorflow-model-optimization) on real digits.

Conditional computation skips a *different* set of blocks for each example;
magnitude pruning removes the *same* weights for every example. This script
trains the dense 64-128-128-10 MLP used by the digits demo, prunes its hidden
layers to a target sparsity with `tfmot.sparsity.keras.prune_low_magnitude`,
and reports test accuracy next to the multiply-add fraction, so the two
methods can be compared at equal compute.

Isolated on purpose: tfmot 0.8 works only with tf-keras (Keras 2), so this
script sets TF_USE_LEGACY_KERAS=1 before importing TensorFlow and never
imports keras_condcomp (which is Keras 3). Install with
`pip install -e ".[tfmot-baseline]"`.

Usage:
    python baselines/tfmot_pruning.py --sparsity 0.75 0.9 --epochs 40 --out runs/tfmot
"""

import argparse
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.75, 0.9],
                        help="final fraction of hidden-layer weights set to zero")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tfmot", help="directory for results.json")
    args = parser.parse_args(argv)
    for value in args.sparsity:
        if not 0.0 <= value < 1.0:
            parser.error(f"--sparsity values must be in [0, 1). Received: sparsity={value}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: epochs={args.epochs}")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=0.3,
                                                        random_state=0)
    steps_per_epoch = int(np.ceil(len(x_train) / 64))

    def build():
        tf_keras.utils.set_random_seed(args.seed)
        return tf_keras.Sequential([
            tf_keras.Input((64,)),
            tf_keras.layers.Dense(128, activation="relu", name="h1"),
            tf_keras.layers.Dense(128, activation="relu", name="h2"),
            tf_keras.layers.Dense(10, activation="softmax", name="out"),
        ])

    def fit_eval(model, callbacks=()):
        model.compile(tf_keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0,
                  callbacks=list(callbacks))
        return float(model.evaluate(x_test, y_test, verbose=0)[1])

    hidden_macs = 64 * 128 + 128 * 128
    rows = [{"method": "dense", "sparsity": 0.0, "accuracy": fit_eval(build()),
             "hidden_mac_fraction": 1.0}]
    for sparsity in args.sparsity:
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
            end_step=steps_per_epoch * max(1, args.epochs // 2),
            frequency=max(1, steps_per_epoch // 2))  # default 100 would skip short runs

        def prune_hidden(layer):
            if layer.name in ("h1", "h2"):
                return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
            return layer

        model = tf_keras.models.clone_model(build(), clone_function=prune_hidden)
        accuracy = fit_eval(model, [tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(model)
        nonzero = sum(int(np.count_nonzero(stripped.get_layer(n).kernel.numpy()))
                      for n in ("h1", "h2"))
        rows.append({"method": "tfmot magnitude pruning", "sparsity": sparsity,
                     "accuracy": accuracy, "hidden_mac_fraction": nonzero / hidden_macs})

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "rows": rows}, f, indent=2)
    print(f"{'method':<26}{'sparsity':>9}{'test acc':>10}{'hidden MAC frac':>17}")
    for row in rows:
        print(f"{row['method']:<26}{row['sparsity']:>9.2f}{row['accuracy']:>10.4f}"
              f"{row['hidden_mac_fraction']:>17.3f}")


if __name__ == "__main__":
    main()
