"""Gate a trained dense network and fine-tune it (issue 10's recipe), vs from scratch.

One run, one seed:

1. split the training set into train and a validation split (`--val-size`,
   carved with the seed; the test set is only evaluated, never used to choose);
2. train the dense network (784-H-H-10 by default) for `--dense-epochs`;
3. for each `--tau`: `keras_condcomp.gate` it (every hidden Dense layer,
   `--num-blocks` blocks), warm up the policies with the network frozen
   (`--warmup-epochs`), fine-tune everything with tau annealed from 1 to its
   target (`--finetune-epochs`, `--anneal-epochs`), then calibrate the
   thresholds on the validation split so that each layer's mean active
   fraction is tau (`keras_condcomp.calibrate_thresholds`);
4. optionally (`--scratch-epochs N`) train the same condnet from scratch;
5. record validation and test error, per-layer active fraction and FLOP
   fraction at inference, and wall time; write `results.json` and the
   `.keras` models to `--out`. Every training stage also records, per epoch,
   the validation error and the training seconds (validation time excluded):
   the `curve` of each row. With `--budget top_k` the condnets' curves are
   measured under the inference budget from the first epoch; with the
   threshold budget, under the uncalibrated 0.5 threshold (calibration comes
   after training). `--threads 1` pins TensorFlow to one thread so that wall
   times of runs are comparable.

    python examples/gate_pretrained.py --data-dir ../shared/datasets/mnist --seed 0 \
        --out runs/gate_s0
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_condcomp  # noqa: E402
from keras_condcomp import data as condcomp_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist", "cifar10"))
    parser.add_argument("--arch", default="fc", choices=("fc", "conv"),
                        help="fc: input-H-H-10 MLP; conv: --filters convolutions (3x3, max "
                        "pooling after every second), then --hidden dense layers")
    parser.add_argument("--filters", type=int, nargs="+", default=[32, 32, 64, 64])
    parser.add_argument("--gate-layers", nargs="+", default=None,
                        help="names of the layers to gate (default: every hidden Dense/Conv2D "
                        "that can be); conv layers are conv_1.., dense ones hidden_1..")
    parser.add_argument("--data-dir", default=None, help="directory with the idx files")
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 1024])
    parser.add_argument("--num-blocks", type=int, default=16)
    parser.add_argument("--tau", type=float, nargs="+", default=[0.25])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--max-train", type=int, default=None,
                        help="use only this many training examples (before the split)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune-learning-rate", type=float, default=3e-4)
    parser.add_argument("--policy-learning-rate", type=float, default=None,
                        help="separate Adam learning rate for the policies while fine-tuning "
                        "(CondCompModel.compile(policy_optimizer=...)); default: the network's")
    parser.add_argument("--baseline", default="ema", choices=("ema", "learned", "leave_one_out"),
                        help="REINFORCE baseline of CondCompModel")
    parser.add_argument("--num-samples", type=int, default=1,
                        help="mask samples per example per step (leave_one_out needs >= 2)")
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--anneal-epochs", type=int, default=4,
                        help="fine-tuning epochs over which tau goes from 1 to its target")
    parser.add_argument("--hard-epochs", type=int, default=0,
                        help="stage 3: epochs of network fine-tuning under the inference masks")
    parser.add_argument("--hard-learning-rate", type=float, default=3e-4)
    parser.add_argument("--budget", default="threshold", choices=("threshold", "top_k"),
                        help="inference budget: thresholds calibrated on the validation split "
                        "to tau (convertible to TFLite), or the top round(tau*blocks) blocks")
    parser.add_argument("--equal-flops-baseline", action="store_true",
                        help="also train a dense net with tau of the hidden units per tau "
                        "(the same multiply-adds as the condnet): the peer at equal compute")
    parser.add_argument("--scratch-epochs", type=int, default=0,
                        help="also train the condnet from scratch for this many epochs (0: no)")
    parser.add_argument("--block-balance-weight", type=float, default=1.0)
    parser.add_argument("--example-balance-weight", type=float, default=2.0)
    parser.add_argument("--variance-weight", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("runs/gate_pretrained"))
    parser.add_argument("--dense-model", type=Path, default=None,
                        help="start from this trained dense .keras model (same seed's split) "
                        "instead of training one")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads (default: TensorFlow's)")
    parser.add_argument("--verbose", type=int, default=2)
    return parser.parse_args(argv)


def load_split(args):
    """`(x_train, y_train), (x_val, y_val), (x_test, y_test)` as flat float32."""
    dataset = condcomp_data.load_dataset(args.dataset, data_dir=args.data_dir,
                                         max_train=args.max_train, seed=args.seed)
    dataset = dataset.for_arch(args.arch)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(dataset.x_train))
    val, train = order[: args.val_size], order[args.val_size:]
    return ((dataset.x_train[train], dataset.y_train[train]),
            (dataset.x_train[val], dataset.y_train[val]),
            (dataset.x_test, dataset.y_test))


def dense_network(input_shape, args, num_classes=10):
    layers = [keras.Input(input_shape)]
    if args.arch == "conv":
        for i, filters in enumerate(args.filters):
            layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                              name=f"conv_{i + 1}"))
            if i % 2 == 1:
                layers.append(keras.layers.MaxPooling2D(name=f"pool_{i // 2 + 1}"))
        layers.append(keras.layers.Flatten(name="flatten"))
    layers += [keras.layers.Dense(h, activation="relu", name=f"hidden_{i + 1}")
               for i, h in enumerate(args.hidden)]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="classifier"))
    return keras.Sequential(layers, name="dense_net")


def adam(learning_rate, decay_steps=None):
    """Adam; with `decay_steps`, the learning rate follows a cosine decay to 0 over them."""
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    return keras.optimizers.Adam(learning_rate)


def compile_model(model, learning_rate, decay_steps=None, policy_learning_rate=None):
    extra = {}
    if policy_learning_rate is not None:
        extra["policy_optimizer"] = adam(policy_learning_rate, decay_steps)
    model.compile(optimizer=adam(learning_rate, decay_steps),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], **extra)


class EpochCurve(keras.callbacks.Callback):
    """Per epoch of `fit`: the validation error and the training seconds.

    The seconds exclude the per-epoch validation pass (timed through
    `on_test_begin`/`on_test_end`, which `fit` calls around it), so that a
    curve's time is what training alone costs.
    """

    def __init__(self):
        super().__init__()
        self.points = []
        self._epoch_start = self._test_start = 0.0
        self._test_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._test_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._test_seconds += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start - self._test_seconds
        self.points.append({"train_seconds": seconds,
                            "val_error": 1.0 - float(logs["val_accuracy"])})


def fit(model, train, epochs, args, callbacks=(), val=None, curve=None):
    """Trains for `epochs`; returns the wall seconds. With `val` and `curve`
    (a list), appends one point per epoch to `curve` (see `EpochCurve`)."""
    start = time.perf_counter()
    if epochs > 0:
        callbacks = list(callbacks)
        recorder = None
        if curve is not None:
            recorder = EpochCurve()
            callbacks.append(recorder)
        model.fit(*train, epochs=epochs, batch_size=args.batch_size, shuffle=True,
                  verbose=args.verbose, callbacks=callbacks,
                  validation_data=val if curve is not None else None)
        if recorder is not None:
            curve.extend(recorder.points)
    return time.perf_counter() - start


def measure(model, split):
    metrics = model.evaluate(*split, batch_size=512, verbose=0, return_dict=True)
    row = {"error": 1.0 - float(metrics["accuracy"])}
    if isinstance(model, keras_condcomp.CondCompModel):
        row["flop_fraction"] = float(metrics["flop_fraction"])
        row["active_fraction"] = {layer.name: float(metrics[f"{layer.name}_active"])
                                  for layer in model.gated_layers}
    return row


def gating_arguments(args, tau):
    return dict(tau=tau, block_balance_weight=args.block_balance_weight,
                example_balance_weight=args.example_balance_weight,
                variance_weight=args.variance_weight)


def inference_budget(model, tau, args):
    """Before training: the top-k budget (if chosen), so per-epoch validation
    measures what inference will run. Training itself samples the masks and
    is unaffected."""
    if args.budget == "top_k":
        keras_condcomp.set_top_k(model, max(1, round(tau * args.num_blocks)))


def set_budget(model, tau, val, args):
    """Calibrated thresholds (default) or a fixed top-k per example, from the validation split."""
    if args.budget == "top_k":
        keras_condcomp.set_top_k(model, max(1, round(tau * args.num_blocks)))
        return {}
    return keras_condcomp.calibrate_thresholds(model, val[0], target=tau)


def adapt_to_inference_masks(model, train, val, tau, args):
    """Stage 3: fine-tune the network under its deterministic (inference) masks.

    REINFORCE training samples masks; inference applies the calibrated rule.
    Here the policies are frozen and the network is trained through the
    masks it will use at inference: a functional wrapper calls the network
    with `training=False`, which Keras keeps during `fit` (the network has no
    dropout or batch normalization whose training mode this would change).
    The thresholds are calibrated again afterwards, since the first layer's
    output, the next policy's input, moved.
    """
    if args.hard_epochs <= 0:
        return
    network = model.network
    for layer in model.gated_layers:
        layer.set_gating(block_balance_weight=0.0, example_balance_weight=0.0,
                         variance_weight=0.0)
        for variable in layer.policy.trainable_variables:
            variable.trainable = False
    inputs = keras.Input(network.inputs[0].shape[1:])  # (no dropout/BN in these networks)
    wrapper = keras.Model(inputs, network(inputs, training=False))
    steps = -(-len(train[0]) // args.batch_size)
    compile_model(wrapper, args.hard_learning_rate, steps * args.hard_epochs)
    fit(wrapper, train, args.hard_epochs, args)
    for layer in model.gated_layers:
        for variable in layer.policy.variables:
            variable.trainable = True
    set_budget(model, tau, val, args)


def condnet_row(model, tau, val, test, seconds, epochs, how):
    thresholds = {layer.name: layer.threshold for layer in model.gated_layers}
    row = {"model": "condnet", "how": how, "tau": tau, "epochs": epochs,
           "train_seconds": seconds, "thresholds": thresholds,
           "top_k": model.gated_layers[0].policy.top_k,
           "val": measure(model, val), "test": measure(model, test)}
    if row["top_k"] is None:
        # The same model under a fixed per-example budget (Keras/TF paths only).
        k = max(1, round(tau * model.gated_layers[0].num_blocks))
        keras_condcomp.set_top_k(model, k)
        row["top_k_budget"] = {"k": k, "val": measure(model, val), "test": measure(model, test)}
        keras_condcomp.set_top_k(model, None)
    print(f"{how} tau={tau:g}: val err {row['val']['error']:.4f} test err "
          f"{row['test']['error']:.4f} active {row['test']['active_fraction']} "
          f"FLOP {row['test']['flop_fraction']:.3f} ({seconds:.0f} s)", flush=True)
    return row


def run(args):
    args.out.mkdir(parents=True, exist_ok=True)
    train, val, test = load_split(args)
    sizes = {"train": len(train[0]), "val": len(val[0]), "test": len(test[0])}
    print(f"{args.dataset}: {sizes}", flush=True)
    results = {"dataset": args.dataset, "sizes": sizes, "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": []}

    def save():
        (args.out / "results.json").write_text(json.dumps(results, indent=2))

    steps = -(-len(train[0]) // args.batch_size)
    keras.utils.set_random_seed(args.seed)
    dense_curve = []
    if args.dense_model is not None:
        dense = keras.models.load_model(args.dense_model)
        seconds = float("nan")
    else:
        dense = dense_network(train[0].shape[1:], args)
        compile_model(dense, args.learning_rate, steps * args.dense_epochs)
        seconds = fit(dense, train, args.dense_epochs, args, val=val, curve=dense_curve)
    row = {"model": "dense", "how": "dense", "tau": None, "epochs": args.dense_epochs,
           "train_seconds": seconds, "curve": dense_curve,
           "val": measure(dense, val), "test": measure(dense, test)}
    print(f"dense: val err {row['val']['error']:.4f} test err {row['test']['error']:.4f}",
          flush=True)
    results["rows"].append(row)
    dense.save(args.out / "dense.keras")
    save()

    for tau in args.tau:
        keras.utils.set_random_seed(args.seed)
        network, report = keras_condcomp.gate(dense, args.num_blocks, seed=args.seed,
                                              layers=args.gate_layers, return_report=True,
                                              **gating_arguments(args, tau))
        print(f"gated {report.gated}; left as they were: {report.skipped}", flush=True)
        model = keras_condcomp.CondCompModel(network, baseline=args.baseline,
                                             num_samples=args.num_samples, estimator="reinforce")
        start = time.perf_counter()
        curve = []
        inference_budget(model, tau, args)
        keras_condcomp.freeze_network(model)
        compile_model(model, args.learning_rate)
        fit(model, train, args.warmup_epochs, args, val=val, curve=curve)
        keras_condcomp.freeze_network(model, frozen=False)
        compile_model(model, args.finetune_learning_rate, steps * args.finetune_epochs,
                      args.policy_learning_rate)
        schedule = [keras_condcomp.GatingScheduler(
            tau=keras_condcomp.linear_schedule(1.0, tau, args.anneal_epochs))
        ] if args.anneal_epochs > 0 else []
        fit(model, train, args.finetune_epochs, args, schedule, val=val, curve=curve)
        set_budget(model, tau, val, args)
        if args.hard_epochs > 0:  # otherwise condnet_row measures the same model
            print(f"before stage 3: val err {measure(model, val)['error']:.4f}", flush=True)
        adapt_to_inference_masks(model, train, val, tau, args)
        seconds = time.perf_counter() - start
        row = condnet_row(model, tau, val, test, seconds,
                          args.warmup_epochs + args.finetune_epochs + args.hard_epochs,
                          "gated_dense")
        row["dense_epochs"] = args.dense_epochs
        row["curve"] = curve
        results["rows"].append(row)
        model.save(args.out / f"gated_tau{tau:g}.keras")
        save()

        if args.scratch_epochs > 0:
            keras.utils.set_random_seed(args.seed)
            scratch_dense = dense_network(train[0].shape[1:], args)
            network = keras_condcomp.gate(scratch_dense, args.num_blocks, seed=args.seed,
                                          layers=args.gate_layers, **gating_arguments(args, tau))
            model = keras_condcomp.CondCompModel(network, baseline=args.baseline,
                                                 num_samples=args.num_samples,
                                                 estimator="reinforce")
            compile_model(model, args.learning_rate, steps * args.scratch_epochs,
                          args.policy_learning_rate)
            schedule = [keras_condcomp.GatingScheduler(
                tau=keras_condcomp.linear_schedule(1.0, tau, max(1, args.scratch_epochs // 3)))]
            curve = []
            inference_budget(model, tau, args)
            seconds = fit(model, train, args.scratch_epochs, args, schedule, val=val, curve=curve)
            set_budget(model, tau, val, args)
            row = condnet_row(model, tau, val, test, seconds, args.scratch_epochs, "scratch")
            row["curve"] = curve
            results["rows"].append(row)
            model.save(args.out / f"scratch_tau{tau:g}.keras")
            save()

        if args.equal_flops_baseline and args.arch == "fc":
            # The peer at the same compute: a plain dense net whose hidden layers
            # have tau of the units (tau * H inputs and outputs per layer after
            # the first: about the condnet's multiply-adds).
            small = argparse.Namespace(**{**vars(args),
                                          "hidden": [max(1, round(tau * h)) for h in args.hidden]})
            keras.utils.set_random_seed(args.seed)
            peer = dense_network(train[0].shape[1:], small)
            compile_model(peer, args.learning_rate, steps * args.dense_epochs)
            seconds = fit(peer, train, args.dense_epochs, args)
            row = {"model": "dense", "how": "dense_equal_flops", "tau": tau,
                   "hidden": small.hidden, "epochs": args.dense_epochs,
                   "train_seconds": seconds, "val": measure(peer, val), "test": measure(peer, test)}
            print(f"dense {small.hidden} (equal FLOPs at tau={tau:g}): test err "
                  f"{row['test']['error']:.4f}", flush=True)
            results["rows"].append(row)
            peer.save(args.out / f"dense_equal_flops_tau{tau:g}.keras")
            save()
    return results


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
        tf.config.threading.set_inter_op_parallelism_threads(arguments.threads)
    run(arguments)
    sys.exit(0)
