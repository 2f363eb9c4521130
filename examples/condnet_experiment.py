"""Shared driver of the paper-reproduction examples (paper_fc.py, cifar10_conv.py).

Each example describes its experiment with an `ExperimentSpec` (paper_fc.py:
one per data set, its table `PRESETS`) and calls `main(spec, argv)`. A run:

1. loads the data set (`keras_condcomp.data`), or tiny synthetic data of the
   same shape with `--smoke`;
2. trains the plain (dense) network of the same shape as the baseline;
3. for each `--tau`, trains the condnet (gated layers, REINFORCE policies via
   `keras_condcomp.CondCompModel`);
4. measures test error, per-layer active fraction, FLOP fraction and the
   inference time of every model on the same batch in the same process;
5. writes `results.json`, `results.csv`, the trained models (`dense.keras`,
   `condnet_tau*.keras`, inputs of `tflite/convert.py`), gate activations
   `gates_tau*.npz`, heat maps `gates_tau*.png` and `block_frequency_vs_tau.png`
   to `--out`.
"""

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras' own TF logs (e.g. retracing notes when several models train in one process).
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_condcomp  # noqa: E402
from keras_condcomp import data as condcomp_data  # noqa: E402
from keras_condcomp import plotting  # noqa: E402
from keras_condcomp.validation import positive_int_argument  # noqa: E402

tf.get_logger().setLevel("ERROR")

SMOKE_TRAIN, SMOKE_TEST = 64, 32


@dataclasses.dataclass
class ExperimentSpec:
    """What one example trains: the data set, the network shape and defaults.

    Attributes:
        name: Example name, used for the default output directory.
        dataset: Data set name from `keras_condcomp.data.DATASET_NAMES`.
        kind: `"fc"` (fully connected) or `"conv"` (convolutional).
        hidden: Default hidden units per gated dense layer (fc), or units of
            the dense layer after the convolutions (conv; 0 for none).
        filters: Default filters of the convolution layers (conv only); the
            first convolution is ungated, the others are `GatedConv2D`.
        num_blocks: Default blocks per gated layer.
        taus: Default target active fractions, one condnet each.
        epochs: Default training epochs.
        batch_size: Default minibatch size.
        learning_rate: Default Adam learning rate.
        standardize: Standardize inputs per channel with train statistics.
        variance_weight: Default weight of L_v. Larger than the layer default
            (0.1): with L_v that weak the policies stay near sigma = tau for
            every example, and the inference rule `sigma > 0.5` then turns
            every block off when tau < 0.5 (seen on digits: 90% test error).
        tau_anneal_epochs: Default epochs over which tau goes from 1 to its
            target (the network first learns with all blocks on).
        description: First line of `--help`.
    """

    name: str
    dataset: str
    kind: str
    hidden: tuple
    num_blocks: int
    taus: tuple
    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    filters: tuple = ()
    standardize: bool = False
    variance_weight: float = 5.0
    tau_anneal_epochs: int = 0
    description: str = ""


def _tau(text):
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"tau must be in (0, 1], got {text}")
    return value


def build_parser(spec, parents=()):
    """Command-line arguments of an example, with `spec`'s defaults.

    `parents`: argparse parsers whose options come first (paper_fc.py's `--dataset`).
    """
    parser = argparse.ArgumentParser(
        description=spec.description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        parents=list(parents),
    )
    parser.add_argument("--epochs", type=positive_int_argument, default=spec.epochs,
                        help="training epochs of every model")
    parser.add_argument("--tau", type=_tau, nargs="+", default=list(spec.taus),
                        help="target fraction(s) of active blocks; one condnet per value")
    parser.add_argument("--num-blocks", type=positive_int_argument, default=spec.num_blocks,
                        help="blocks per gated layer (must divide the layer width)")
    if spec.kind == "fc":
        parser.add_argument("--hidden", type=positive_int_argument, nargs="+",
                            default=list(spec.hidden), help="units of each hidden (gated) layer")
    else:
        parser.add_argument("--filters", type=positive_int_argument, nargs="+",
                            default=list(spec.filters),
                            help="filters of each 3x3 convolution; the first is ungated, "
                            "a 2x2 max-pool follows every second one")
        parser.add_argument("--hidden", type=int, nargs="+", default=list(spec.hidden),
                            help="units of the dense layer(s) after the convolutions")
    parser.add_argument("--batch-size", type=positive_int_argument, default=spec.batch_size)
    parser.add_argument("--learning-rate", type=float, default=spec.learning_rate,
                        help="Adam learning rate")
    parser.add_argument("--tau-anneal-epochs", type=int, default=spec.tau_anneal_epochs,
                        help="anneal tau linearly from 1 to its target over this many epochs "
                        "(0: fixed tau)")
    parser.add_argument("--block-balance-weight", type=float, default=1.0,
                        help="weight of L_b (each block active a fraction tau of the time)")
    parser.add_argument("--example-balance-weight", type=float, default=1.0,
                        help="weight of L_e (each example uses a fraction tau of the blocks)")
    parser.add_argument("--variance-weight", type=float, default=spec.variance_weight,
                        help="weight of L_v (rewards policies that vary across examples)")
    parser.add_argument("--policy-weight", type=float, default=1.0,
                        help="weight of the REINFORCE term")
    parser.add_argument("--out", type=Path, default=Path("runs") / spec.name,
                        help="output directory for results, gates and figures")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory holding the data set files (see keras_condcomp.data; "
                        f"also ${condcomp_data.DATA_DIR_ENV})")
    parser.add_argument("--download", action="store_true",
                        help="let tensorflow-datasets download the data set if not found locally")
    parser.add_argument("--max-train", type=positive_int_argument, default=None,
                        help="use a random subset of this many training examples")
    parser.add_argument("--max-test", type=positive_int_argument, default=None,
                        help="use a random subset of this many test examples")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip training the dense baseline network")
    parser.add_argument("--timing-batch-size", type=positive_int_argument, nargs="+",
                        default=[1, 256],
                        help="batch size(s) of the timed inference calls (test examples); "
                        "the block-sparse paths gain most on small batches")
    parser.add_argument("--timing-repeats", type=positive_int_argument, default=50,
                        help="timed calls per model and batch size; the median is reported")
    parser.add_argument("--inference-path", nargs="+", choices=INFERENCE_PATHS,
                        default=list(INFERENCE_PATHS),
                        help="inference paths to time: 'keras' = masked Keras graph (every block "
                        "computed, then masked); 'tf_sparse' = keras_condcomp.sparse (gathers "
                        "active blocks, TensorFlow ops); 'tflite' = TFLite with the CondComp "
                        "custom ops (needs `bash tflite/build_ops.sh`). Unavailable paths are "
                        "skipped with a note unless named alone")
    parser.add_argument("--threads", type=positive_int_argument, default=1,
                        help="threads of the TFLite interpreters (1 is the most repeatable on "
                        "a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit verbosity (1: progress bars)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny synthetic data of the right shape ({SMOKE_TRAIN} train / "
                        f"{SMOKE_TEST} test), 1 epoch, few timing repeats: checks the script runs")
    return parser


# --------------------------------------------------------------------------- models


def build_network(spec, args, gated, tau=1.0):
    """The condnet (`gated=True`) or the dense network of the same shape."""
    num_classes = condcomp_data.NUM_CLASSES
    gating = dict(
        num_blocks=args.num_blocks,
        tau=tau,
        block_balance_weight=args.block_balance_weight,
        example_balance_weight=args.example_balance_weight,
        variance_weight=args.variance_weight,
    )
    layers = [keras.Input(args.input_shape)]
    count = 0

    def dense(units):
        nonlocal count
        count += 1
        if gated:
            return keras_condcomp.GatedDense(units, activation="relu", name=f"gated_{count}",
                                             **gating)
        return keras.layers.Dense(units, activation="relu", name=f"dense_{count}")

    if spec.kind == "fc":
        layers += [dense(units) for units in args.hidden]
    else:
        for index, filters in enumerate(args.filters):
            if index == 0 or not gated:
                # The first convolution sees raw pixels; its mean over space says
                # little about the image, so it stays dense in both networks.
                layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                                  name=f"conv_{index + 1}"))
            else:
                count += 1
                layers.append(keras_condcomp.GatedConv2D(
                    filters, 3, padding="same", activation="relu", name=f"gated_{count}",
                    **gating))
            if index % 2 == 1:
                layers.append(keras.layers.MaxPooling2D(name=f"pool_{index // 2 + 1}"))
        layers.append(keras.layers.Flatten())
        layers += [dense(units) for units in args.hidden if units > 0]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="classifier"))
    return keras.Sequential(layers, name=("condnet" if gated else "dense_net"))


def _check_blocks_divide(spec, args):
    widths = list(args.hidden) if spec.kind == "fc" else list(args.filters[1:]) + [
        h for h in args.hidden if h > 0
    ]
    for width in widths:
        if width % args.num_blocks:
            raise ValueError(
                f"Argument `--num-blocks` must divide every gated layer width {widths}. "
                f"Received: num_blocks={args.num_blocks}"
            )


# --------------------------------------------------------------------------- timing


INFERENCE_PATHS = ("keras", "tf_sparse", "tflite")
PATH_DESCRIPTIONS = {
    "keras": "model(x, training=False) in a tf.function; condnet: every block computed, then "
    "masked; dense: the trained dense baseline",
    "tf_sparse": "keras_condcomp.sparse.SparseInference (TensorFlow ops, tf.function): gathers "
    "the blocks active for any example of the batch; dense: the trained dense baseline in "
    "the Keras graph",
    "tflite": "TFLite (keras_condcomp.litert.Interpreter), {threads} thread(s); condnet: CondComp "
    "custom ops computing active blocks only; dense: the same network converted with every "
    "block on (builtin ops, XNNPACK)",
}


class InferencePaths:
    """Builds the timed inference functions of each available path.

    `keras` is always there. `tf_sparse` needs `keras_condcomp.sparse`;
    `tflite` needs `tflite/convert.py` and the native op library
    (`keras_condcomp.litert`). On the TFLite path the dense reference is the
    condnet converted with `dense=True` (same shape, same runtime), so the
    ratio isolates what gating saves.

    Attributes:
        paths: The usable requested paths, in `INFERENCE_PATHS` order.
        skipped: `{path: reason}` for requested paths that cannot be used.
    """

    def __init__(self, requested, threads):
        self.threads = threads
        self.paths, self.skipped = [], {}
        for path in INFERENCE_PATHS:
            if path not in requested:
                continue
            reason = getattr(self, f"_setup_{path}")()
            if reason:
                self.skipped[path] = reason
            else:
                self.paths.append(path)

    def _setup_keras(self):
        return None

    def _setup_tf_sparse(self):
        try:
            from keras_condcomp.sparse import SparseInference
        except ImportError as error:
            return f"keras_condcomp.sparse unavailable: {error}"
        self._sparse_inference = SparseInference
        return None

    def _setup_tflite(self):
        try:
            from keras_condcomp import converter, litert

            litert.load_library()
        except Exception as error:  # noqa: BLE001 - any failure means: skip this path
            return f"custom-op library unusable: {error}"
        self._converter = converter
        self._litert = litert
        return None

    def description(self, path):
        return PATH_DESCRIPTIONS[path].format(threads=self.threads)

    def condnet_fn(self, path, model):
        """`fn(x) -> y`: deterministic inference of a trained `CondCompModel`."""
        if path == "keras":
            return keras_graph_fn(model)
        if path == "tf_sparse":
            return self._sparse_inference(model.network)
        return self._tflite_fn(model, dense=False)

    def dense_fn(self, path, dense_net, condnet):
        """The dense reference of `path` (None when it has none)."""
        if path == "tflite":
            return self._tflite_fn(condnet, dense=True)
        return None if dense_net is None else keras_graph_fn(dense_net)

    def _tflite_fn(self, model, dense):
        flatbuffer = self._converter.convert(model, dense=dense)
        interpreter = self._litert.Interpreter(
            model_content=flatbuffer, num_threads=self.threads, custom_ops=not dense
        )
        return interpreter.predict


def keras_graph_fn(model):
    """`model(x, training=False)` compiled once as a `tf.function`."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def time_models(fns, x, repeats, warmup=3):
    """Median seconds per call of each `fns[(path, model)](x)`.

    The models of one path are timed in interleaved rounds (dense, condnet,
    ...; the order rotates every round) so load from other processes hits them
    alike; speedups compare models of the same path. Paths are timed one after
    the other: right after TensorFlow work, TF's worker threads keep spinning
    for a while and would slow down whichever TFLite call came next.
    """
    x = tf.constant(x)
    x_numpy = x.numpy()
    seconds = {}
    for path in dict.fromkeys(key[0] for key in fns):
        group = [(key, fn) for key, fn in fns.items() if key[0] == path]
        inputs = x_numpy if path == "tflite" else x
        for _, fn in group:
            for _ in range(warmup):
                np.asarray(fn(inputs))
        times = {key: [] for key, _ in group}
        for round_index in range(repeats):
            shift = round_index % len(group)
            for key, fn in group[shift:] + group[:shift]:
                start = time.perf_counter()
                np.asarray(fn(inputs))  # forces the result to be computed
                times[key].append(time.perf_counter() - start)
        seconds.update({key: float(np.median(values)) for key, values in times.items()})
    return seconds


# --------------------------------------------------------------------------- run


def load_data(spec, args):
    if args.smoke:
        dataset = condcomp_data.synthetic_dataset(
            spec.dataset, num_train=SMOKE_TRAIN, num_test=SMOKE_TEST, seed=args.seed
        )
    else:
        dataset = condcomp_data.load_dataset(
            spec.dataset, data_dir=args.data_dir, download=True if args.download else None,
            max_train=args.max_train, max_test=args.max_test, seed=args.seed,
        )
    if spec.standardize:
        dataset = dataset.standardized()
    if spec.kind == "fc":
        dataset = dataset.flattened()
    return dataset


def _compile(model, args):
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _train(model, dataset, args, callbacks=()):
    start = time.perf_counter()
    model.fit(dataset.x_train, dataset.y_train, epochs=args.epochs, batch_size=args.batch_size,
              callbacks=list(callbacks), verbose=args.verbose, shuffle=True)
    return time.perf_counter() - start


def run(spec, args):
    """Trains and measures every model; returns the results dict it also writes."""
    if args.smoke:
        args.epochs = 1
        args.timing_repeats = min(args.timing_repeats, 3)
        args.timing_batch_size = [min(b, SMOKE_TEST) for b in args.timing_batch_size]
        args.max_train = args.max_test = None
    _check_blocks_divide(spec, args)
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(spec, args)
    args.input_shape = dataset.input_shape
    print(dataset.summary(), flush=True)
    paths = InferencePaths(args.inference_path, args.threads)
    for path, reason in paths.skipped.items():
        if len(args.inference_path) == 1:
            raise ValueError(
                f"Argument `--inference-path` asks for {path!r}, which cannot be used: "
                f"{reason}. Received: inference_path={args.inference_path}"
            )
        print(f"Inference path {path!r} skipped: {reason}", flush=True)
    check_x = dataset.x_test[: max(args.timing_batch_size)]

    rows, condnets, dense_net = [], {}, None
    if not args.no_baseline:
        keras.utils.set_random_seed(args.seed)
        dense_net = build_network(spec, args, gated=False)
        _compile(dense_net, args)
        print(f"\n== dense baseline {dense_net.name}: {dense_net.count_params()} parameters",
              flush=True)
        train_seconds = _train(dense_net, dataset, args)
        metrics = dense_net.evaluate(dataset.x_test, dataset.y_test, verbose=0, return_dict=True)
        rows.append({"model": "dense", "tau": None, "test_error": 1.0 - metrics["accuracy"],
                     "flop_fraction": 1.0, "active_fraction": {}, "train_seconds": train_seconds,
                     "model_file": _save_model(dense_net, args.out / "dense.keras")})

    for tau in args.tau:
        keras.utils.set_random_seed(args.seed)
        network = build_network(spec, args, gated=True, tau=tau)
        model = keras_condcomp.CondCompModel(network, policy_weight=args.policy_weight,
                                             estimator="reinforce")
        _compile(model, args)
        callbacks = []
        if args.tau_anneal_epochs > 0:
            callbacks.append(keras_condcomp.GatingScheduler(
                tau=keras_condcomp.linear_schedule(1.0, tau, args.tau_anneal_epochs)))
        print(f"\n== condnet tau={tau:g}, {args.num_blocks} blocks per gated layer: "
              f"{network.count_params()} parameters", flush=True)
        train_seconds = _train(model, dataset, args, callbacks)
        metrics = model.evaluate(dataset.x_test, dataset.y_test, verbose=0, return_dict=True)
        active = {layer.name: float(metrics[f"{layer.name}_active"])
                  for layer in model.gated_layers}
        name = f"condnet_tau{tau:g}"
        row = {"model": name, "tau": tau, "test_error": 1.0 - metrics["accuracy"],
               "flop_fraction": float(metrics["flop_fraction"]),
               "active_fraction": active, "train_seconds": train_seconds,
               "model_file": _save_model(model, args.out / f"{name}.keras")}
        rows.append(row)
        condnets[name] = model

    row_by_model = {row["model"]: row for row in rows}
    fns = {}  # (path, model name) -> fn
    for path in list(paths.paths):
        try:
            path_fns = {}
            for name, model in condnets.items():
                path_fns[(path, name)] = paths.condnet_fn(path, model)
                # Every fast path must compute what the Keras model computes.
                expected = keras.ops.convert_to_numpy(model(check_x, training=False))
                got = np.asarray(path_fns[(path, name)](check_x))
                row_by_model[name].setdefault("max_abs_diff_vs_keras", {})[path] = float(
                    np.max(np.abs(got - expected)))
            if condnets:
                dense_fn = paths.dense_fn(path, dense_net, next(iter(condnets.values())))
                if dense_fn is not None:
                    path_fns[(path, "dense")] = dense_fn
        except Exception as error:  # noqa: BLE001 - keep the trained results; report why
            if path == "keras" or len(args.inference_path) == 1:
                raise
            paths.paths.remove(path)
            paths.skipped[path] = f"failed: {type(error).__name__}: {error}"[:500]
            print(f"Inference path {path!r} failed and is not timed: {paths.skipped[path]}",
                  file=sys.stderr, flush=True)
            continue
        fns.update(path_fns)
    timings = []
    for batch_size in args.timing_batch_size:
        seconds = time_models(fns, dataset.x_test[:batch_size], repeats=args.timing_repeats)
        for (path, name), value in seconds.items():
            dense = seconds.get((path, "dense"))
            timings.append({"path": path, "model": name, "batch_size": batch_size,
                            "ms": 1000.0 * value,
                            "speedup_vs_dense": dense / value if dense else None})

    frequencies_by_tau = {}
    for model in condnets.values():
        tau = float(model.gated_layers[0].initial_tau)
        activations = plotting.gate_activations(model, dataset.x_test[:2000])
        labels = dataset.y_test[:2000]
        plotting.save_gate_activations(args.out / f"gates_tau{tau:g}.npz", activations,
                                       labels=labels, tau=tau)
        plotting.plot_gate_heatmaps(
            activations, labels=labels,
            title=f"{spec.name}: gates of the condnet with tau={tau:g} (test examples)",
            path=args.out / f"gates_tau{tau:g}.png")
        frequencies_by_tau[tau] = plotting.block_frequencies(activations)
    if frequencies_by_tau:
        plotting.plot_frequency_vs_tau(
            frequencies_by_tau, title=f"{spec.name}: block activation frequency (test set)",
            path=args.out / "block_frequency_vs_tau.png")

    results = {
        "example": spec.name,
        "command": args.command,
        "smoke": bool(args.smoke),
        "dataset": {"name": dataset.name, "source": dataset.source,
                    "num_train": int(len(dataset.x_train)), "num_test": int(len(dataset.x_test))},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k != "input_shape"},
        "timing": {"statistic": f"median of {args.timing_repeats} calls, the models of a "
                   "path interleaved in rotating order, paths one after the other",
                   "paths": {path: paths.description(path) for path in paths.paths},
                   "skipped_paths": paths.skipped,
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"TensorFlow {tf.__version__}"},
        "timings": timings,
        "rows": rows,
    }
    write_results(args.out, results)
    print_summary(results)
    return results


def _save_model(model, path):
    """Saves `model` as a .keras file (input of `tflite/convert.py`); returns the file name."""
    model.save(path)
    return path.name


def _fmt(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def timing_columns(results):
    """`{column: (path, batch_size)}` for every timed path and batch size."""
    columns = {}
    for t in results["timings"]:
        columns[f"{t['path']}_ms_b{t['batch_size']}"] = (t["path"], t["batch_size"])
    return columns


def _timing(results, model, path, batch_size):
    for t in results["timings"]:
        if (t["model"], t["path"], t["batch_size"]) == (model, path, batch_size):
            return t
    return None


def write_results(out, results):
    """`results.json` (everything) and `results.csv` (one row per model)."""
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    layer_names = []
    for row in results["rows"]:
        layer_names += [n for n in row["active_fraction"] if n not in layer_names]
    columns = timing_columns(results)
    fields = ["example", "dataset", "smoke", "model", "tau", "test_error", "flop_fraction",
              *[f"active_{n}" for n in layer_names]]
    for column in columns:
        fields += [column, column.replace("_ms_", "_speedup_")]
    fields += ["train_seconds"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in results["rows"]:
            record = {
                "example": results["example"], "dataset": results["dataset"]["name"],
                "smoke": results["smoke"], "model": row["model"], "tau": row["tau"],
                "test_error": _fmt(row["test_error"], 4),
                "flop_fraction": _fmt(row["flop_fraction"], 4),
                **{f"active_{n}": _fmt(v, 4) for n, v in row["active_fraction"].items()},
                "train_seconds": _fmt(row["train_seconds"], 1),
            }
            for column, (path, batch_size) in columns.items():
                t = _timing(results, row["model"], path, batch_size)
                record[column] = _fmt(t and t["ms"], 4)
                record[column.replace("_ms_", "_speedup_")] = _fmt(
                    t and t["speedup_vs_dense"], 3)
            writer.writerow(record)


def print_summary(results):
    print(f"\n{results['example']} on {results['dataset']['source']}"
          f"{' (SMOKE: synthetic data, numbers mean nothing)' if results['smoke'] else ''}")
    print(f"{'model':<18}{'test err':>9}{'FLOP frac':>10}  active per gated layer")
    for row in results["rows"]:
        active = " ".join(f"{v:.2f}" for v in row["active_fraction"].values())
        print(f"{row['model']:<18}{row['test_error']:>9.4f}{row['flop_fraction']:>10.3f}  {active}")
    print(f"\ninference time in ms per call ({results['timing']['statistic']}), "
          "speedup = dense time / this time on the same path")
    columns = timing_columns(results)
    print(f"{'model':<18}" + "".join(f"{c:>22}" for c in columns))
    for row in results["rows"]:
        cells = []
        for path, batch_size in columns.values():
            t = _timing(results, row["model"], path, batch_size)
            speedup = None if not t else t["speedup_vs_dense"]
            speed = "" if speedup is None else f" ({speedup:.2f}x)"
            cells.append("" if t is None else f"{t['ms']:.3f}{speed}")
        print(f"{row['model']:<18}" + "".join(f"{c:>22}" for c in cells))
    for path, description in results["timing"]["paths"].items():
        print(f"  {path}: {description}")
    for path, reason in results["timing"]["skipped_paths"].items():
        print(f"  {path}: skipped ({reason})")
    print(f"wrote {results['config']['out']}/results.json, results.csv and figures")


def main(spec, argv=None, script=None, parents=()):
    """Parses `argv` (default: the command line) and runs the experiment.

    `script` is the file name that `results.json`'s "command" records
    (default `<spec.name>.py`); `parents` as in `build_parser`.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(spec, parents).parse_args(argv)
    args.command = " ".join([f"python examples/{script or spec.name + '.py'}", *argv])
    try:
        run(spec, args)
    except condcomp_data.DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        print("hint: --smoke runs on synthetic data; `examples/paper_fc.py --dataset digits` "
              "runs on real data shipped with scikit-learn.", file=sys.stderr)
        return 2
    return 0
