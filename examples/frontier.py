"""The accuracy-latency frontier: condnets against dense nets of every speed.

One command per data set trains (or reuses) a family of models with one
shared recipe, converts each to TFLite in every precision, times them all
interleaved in one process and writes the table, the JSON and the plot:

    python examples/frontier.py --dataset mnist --data-dir ../shared/datasets/mnist
    python examples/frontier.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist

Resumable: a (model, seed) whose `result.json` exists under `--runs` is not
trained again, so the command can be stopped and rerun, or run with
`--train-only` in the background (one process per core) and measured later.

The family (all 2 hidden layers, ReLU, softmax classifier):
- dense nets 784-H-H-10 for each `--dense H`;
- condnets 784-W-W-10 for each `--condnet W:K:k:ESTIMATOR:ANNEAL`: two
  `GatedDense` layers of W units in K blocks, each example computing k
  blocks per layer at inference (`top_k`), trained with
  `CondCompModel(estimator=ESTIMATOR)`; with ANNEAL > 0 tau goes from 1 to
  k/K over the first ANNEAL epochs (`GatingScheduler`), so training starts
  with every block on (for `straight_through` the training budget is tau's
  share of the blocks, never below k).

The shared recipe: Adam 1e-3 with cosine decay to 0, batch 128, `--epochs`
epochs, a validation split of `--val-size` carved out of the training set
per seed (the test set is only evaluated). Estimator-specific parts:
`straight_through`, `gumbel` and `routing` train with the top-k masks of
inference (`gumbel`: of the logits plus logistic noise; `routing`: layers
built with `scale_by_gate=True`, the kept blocks scaled by their gate
values, the policy learning through them), L_b weight 0.1
(block balance), L_e and L_v 0 (chosen on the validation split of seed 0,
3-epoch probes without annealing: L_b 1, 0.1, 0 gave 0.0368, 0.0316,
0.0322); `reinforce` (the paper's) uses L_b 1, L_e 2, L_v 1 and an EMA
baseline, then takes the top-k budget for inference.

Measured per model and precision: test error of the converted `.tflite` for
every seed (LiteRT, the CondComp ops for condnets), and the batch-1 and
batch-32 latency of the first seed's model (LiteRT, 1 thread, every model
of the family interleaved, medians). Precisions: float32; "dynamic" (int8
weights, run-time activation scales: `convert(quantize="dynamic")`); "int8"
(dense: the standard full-integer model; condnets: the CondComp int8 ops
with static activation scales, `convert(quantize="int8")`), both calibrated
on 500 validation examples. Writes `<out>/frontier_<dataset>.{json,md,png}`.
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
from keras_condcomp.litert import cpu_name, interpreter_for_batch, time_interleaved  # noqa: E402
from keras_condcomp.policy import ESTIMATORS  # noqa: E402

PRECISIONS = ("float32", "dynamic", "int8")
MARKERS = {"straight_through": "s", "gumbel": "D", "routing": "P"}  # reinforce: "^"
DEFAULT_DENSE = (64, 128, 256, 384, 512, 1024)
DEFAULT_CONDNETS = (
    "1024:16:4:reinforce:4",
    "1024:16:4:straight_through:0",
    "1024:16:4:straight_through:4",
    "1024:16:4:gumbel:4",
    "1024:16:4:straight_through:4:kd",
    "1024:16:4:straight_through:4:warm:kd",  # the README's recipe
)
CALIBRATION_EXAMPLES = 500
# The default teacher of the `:kd` condnets and the `--kd-dense` nets: the
# widest dense net of the family, trained with the same seed (so it is
# trained first: the specs train in order, dense nets first).
TEACHER = "dense_h1024"
DISTILLATION = dict(distillation_weight=1.0, temperature=2.0)


class ModelSpec:
    """One member of the family; `name` is its directory under `--runs`."""

    def __init__(self, hidden, num_blocks=None, top_k=None, estimator=None, anneal_epochs=0,
                 teacher=None, warm_start=None):
        self.hidden = hidden
        self.num_blocks = num_blocks
        self.top_k = top_k
        self.estimator = estimator
        self.anneal_epochs = anneal_epochs
        self.teacher = teacher  # name of the trained model of the same seed, or None
        # name of the trained dense net of the same seed whose weights the
        # condnet starts from (`keras_condcomp.gate`), or None
        self.warm_start = warm_start

    @property
    def gated(self):
        return self.num_blocks is not None

    @property
    def name(self):
        if not self.gated:
            name = f"dense_h{self.hidden}"
        else:
            name = (f"condnet_h{self.hidden}_b{self.num_blocks}_k{self.top_k}_{self.estimator}"
                    f"_a{self.anneal_epochs}")
        if self.warm_start is not None:
            name = f"{name}_warm-{self.warm_start}"
        return name if self.teacher is None else f"{name}_kd-{self.teacher}"

    @property
    def active_units(self):
        return self.hidden * self.top_k // self.num_blocks if self.gated else self.hidden

    def macs(self, inputs, classes):
        """Multiply-adds per example at inference (policies included for condnets)."""
        a = self.active_units
        macs = inputs * a + a * a + a * classes
        if self.gated:
            # Policies: layer 1 reads the input, layer 2 the active units of layer 1.
            macs += inputs * self.num_blocks + a * self.num_blocks
        return macs


def parse_condnet(text):
    try:
        hidden, blocks, k, estimator, anneal, *extras = text.split(":")
        if extras not in ([], ["kd"], ["warm"], ["warm", "kd"]):
            raise ValueError(text)
        # "kd" and "warm": the --teacher, set after parsing
        spec = ModelSpec(int(hidden), int(blocks), int(k), estimator, int(anneal),
                         "kd" if "kd" in extras else None, "kd" if "warm" in extras else None)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected HIDDEN:BLOCKS:K:ESTIMATOR:ANNEAL_EPOCHS[:warm][:kd] (e.g. "
            f"1024:16:4:straight_through:4), got {text!r}")
    if spec.estimator not in ESTIMATORS:
        raise argparse.ArgumentTypeError(f"unknown estimator {spec.estimator!r} in {text!r}")
    if spec.hidden % spec.num_blocks or not 1 <= spec.top_k <= spec.num_blocks:
        raise argparse.ArgumentTypeError(
            f"BLOCKS must divide HIDDEN and 1 <= K <= BLOCKS: {text!r}")
    return spec


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=None,
                        help="trained models go here (default runs/frontier_<dataset>)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"),
                        help="directory of frontier_<dataset>.{json,md,png}")
    parser.add_argument("--dense", type=int, nargs="*", default=list(DEFAULT_DENSE),
                        help="hidden widths of the dense nets")
    parser.add_argument("--kd-dense", type=int, nargs="*", default=[],
                        help="hidden widths of dense nets distilled from --teacher")
    parser.add_argument("--teacher", default=TEACHER,
                        help="the dense net (by name) whose same-seed model teaches the "
                        "`:kd` condnets and the --kd-dense nets")
    parser.add_argument("--condnet", type=parse_condnet, nargs="*",
                        default=[parse_condnet(c) for c in DEFAULT_CONDNETS],
                        help="condnets as HIDDEN:BLOCKS:K:ESTIMATOR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--max-train", type=int, default=None,
                        help="train on a random subset (quick checks; not for the tables)")
    parser.add_argument("--train-only", action="store_true",
                        help="train what is missing, measure nothing")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure the trained models, train nothing")
    parser.add_argument("--only", nargs="*", default=None,
                        help="train only the models with these names (e.g. dense_h256)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the .md and .png from the .json in --out (no measuring)")
    parser.add_argument("--skip-timing", action="store_true",
                        help="convert and evaluate the trained models (cached next to them), "
                        "time and write nothing: the slow part, done while others train")
    parser.add_argument("--timing-rounds", type=int, default=30,
                        help="interleaved rounds; each round times every model")
    parser.add_argument("--timing-runs", type=int, default=20,
                        help="invokes per model per round (the median over all is reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    args.runs = args.runs or Path("runs") / f"frontier_{args.dataset}"
    for spec in args.condnet:
        if spec.teacher == "kd":
            spec.teacher = args.teacher
        if spec.warm_start == "kd":
            spec.warm_start = args.teacher
    args.specs = ([ModelSpec(h) for h in args.dense] + list(args.condnet)
                  + [ModelSpec(h, teacher=args.teacher) for h in args.kd_dense])
    return args


# --------------------------------------------------------------------------- training


def load_split(args, seed):
    """`(train, val, test)` pairs of flat float32 inputs and labels; val carved per seed."""
    dataset = condcomp_data.load_dataset(args.dataset, data_dir=args.data_dir).flattened()
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))
    val, train = order[: args.val_size], order[args.val_size:]
    if args.max_train:
        train = train[: args.max_train]
    return ((dataset.x_train[train], dataset.y_train[train]),
            (dataset.x_train[val], dataset.y_train[val]),
            (dataset.x_test, dataset.y_test))


def build_model(spec, input_dim, num_classes, teacher=None, warm_start=None):
    """The model of `spec` (a CondCompModel for condnets), uncompiled, and its network.

    `warm_start`: the trained dense net whose weights a condnet starts from.
    """
    if spec.gated:
        k_over_blocks = spec.top_k / spec.num_blocks
        if spec.estimator != "reinforce":  # backprop estimators train with the budget
            gating = dict(tau=1.0 if spec.anneal_epochs else k_over_blocks, top_k=spec.top_k,
                          block_balance_weight=0.1,
                          example_balance_weight=0.0, variance_weight=0.0,
                          # routing learns through the gate values scaling the blocks
                          scale_by_gate=spec.estimator == "routing")
        else:
            # top_k: the inference budget, so per-epoch validation (and
            # val_loss) measures the model as deployed; REINFORCE training
            # samples the masks whatever it is.
            gating = dict(tau=1.0 if spec.anneal_epochs else k_over_blocks, top_k=spec.top_k,
                          block_balance_weight=1.0,
                          example_balance_weight=2.0, variance_weight=1.0)
    if warm_start is not None:
        network = keras_condcomp.gate(warm_start, spec.num_blocks, **gating)
    else:
        if spec.gated:
            hidden = [keras_condcomp.GatedDense(spec.hidden, num_blocks=spec.num_blocks,
                                                activation="relu", name=f"gated_{i + 1}",
                                                **gating)
                      for i in range(2)]
        else:
            hidden = [keras.layers.Dense(spec.hidden, activation="relu", name=f"hidden_{i + 1}")
                      for i in range(2)]
        network = keras.Sequential(
            [keras.Input((input_dim,)), *hidden,
             keras.layers.Dense(num_classes, activation="softmax", name="classifier")],
            name=spec.name)
    distill = dict(teacher=teacher, **DISTILLATION) if teacher is not None else {}
    if spec.gated:
        return keras_condcomp.CondCompModel(network, estimator=spec.estimator, **distill), network
    if teacher is not None:
        return keras_condcomp.Distiller(network, **distill), network
    return network, network


def error(model, x, y):
    probs = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) != y))


def train_one(spec, seed, args):
    """Trains `spec` with `seed`; writes model.keras and result.json under runs/name/seedN."""
    out = args.runs / spec.name / f"seed{seed}"
    if (out / "result.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    train, val, test = load_split(args, seed)
    def trained(name):
        return keras.models.load_model(args.runs / name / f"seed{seed}" / "model.keras")

    teacher = trained(spec.teacher) if spec.teacher is not None else None
    warm_start = trained(spec.warm_start) if spec.warm_start is not None else None
    model, network = build_model(spec, train[0].shape[1], 10, teacher, warm_start)
    steps = args.epochs * -(-len(train[0]) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callbacks = []
    if spec.gated and spec.anneal_epochs > 0:
        callbacks.append(keras_condcomp.GatingScheduler(tau=keras_condcomp.linear_schedule(
            1.0, spec.top_k / spec.num_blocks, spec.anneal_epochs)))
    start = time.time()
    history = model.fit(*train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=val, callbacks=callbacks, verbose=args.verbose)
    seconds = time.time() - start
    result = {"model": spec.name, "seed": seed, "train_seconds": seconds,
              "train_size": len(train[0]), "val_size": len(val[0]), "test_size": len(test[0]),
              "val_error": error(model, *val), "test_error_keras": error(model, *test),
              "val_loss_per_epoch": [float(v) for v in history.history["val_loss"]]}
    # The network is what is deployed (a Distiller's teacher is not part of it).
    (model if spec.gated else network).save(out / "model.keras")
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"{spec.name} seed {seed}: val {result['val_error']:.4f} test "
          f"{result['test_error_keras']:.4f} ({seconds:.0f} s)", flush=True)


# --------------------------------------------------------------------------- measuring


def convert_all(run, val_x):
    """`{precision: tflite bytes}` of the trained model in `run`, converted once.

    The files (`model_<precision>.tflite`) stay next to `model.keras`, so a
    rerun (e.g. to time again) does not convert again, unless they were
    written by a converter of another `FORMAT_VERSION` (recorded in
    `tflite_format.txt`).
    """
    from keras_condcomp import converter

    paths = {p: run / f"model_{p}.tflite" for p in PRECISIONS}
    stamp = run / "tflite_format.txt"
    current = stamp.exists() and stamp.read_text().strip() == str(converter.FORMAT_VERSION)
    if not current or not all(path.exists() for path in paths.values()):
        model = keras.models.load_model(run / "model.keras")
        representative = val_x[:CALIBRATION_EXAMPLES]
        paths["float32"].write_bytes(converter.convert(model))
        paths["dynamic"].write_bytes(converter.convert(model, quantize="dynamic"))
        paths["int8"].write_bytes(
            converter.convert(model, quantize="int8", representative=representative))
        stamp.write_text(f"{converter.FORMAT_VERSION}\n")
        keras.backend.clear_session()
    return {p: path.read_bytes() for p, path in paths.items()}


def tflite_error(data, gated, x, y, threads):
    from keras_condcomp.litert import Interpreter

    interp = Interpreter(model_content=data, num_threads=threads, custom_ops=gated)
    predictions = np.concatenate([interp.predict(x[i:i + 500]) for i in range(0, len(x), 500)])
    return float(np.mean(np.argmax(predictions, axis=-1) != y))


def measure(args):
    """Converts, evaluates and times every trained model; returns the JSON rows."""
    rows, timed = [], {}
    test_x = test_y = None
    for spec in args.specs:
        seeds = [s for s in args.seeds
                 if (args.runs / spec.name / f"seed{s}" / "result.json").exists()]
        if not seeds:
            print(f"{spec.name}: not trained yet, left out", flush=True)
            continue
        errors = {p: [] for p in PRECISIONS}
        sizes = None
        for seed in seeds:
            run = args.runs / spec.name / f"seed{seed}"
            result = json.loads((run / "result.json").read_text())
            sizes = (result["train_size"], result["val_size"], result["test_size"])
            _, val, test = load_split(args, seed)
            test_x, test_y = test
            cached = run / "tflite_test_errors.json"
            known = json.loads(cached.read_text()) if cached.exists() else {}
            for precision, data in convert_all(run, val[0]).items():
                if precision not in known:
                    known[precision] = tflite_error(data, spec.gated, *test, args.threads)
                errors[precision].append(known[precision])
                if seed == seeds[0]:
                    timed[(spec.name, precision)] = data
            cached.write_text(json.dumps(known))
        print(f"{spec.name}: " + ", ".join(
            f"{p} {np.mean(e):.4f}" for p, e in errors.items()), flush=True)
        for precision in PRECISIONS:
            e = errors[precision]
            rows.append({
                "dataset": args.dataset, "train_size": sizes[0], "val_size": sizes[1],
                "test_size": sizes[2], "model": "condnet" if spec.gated else "dense",
                "name": spec.name, "hidden": spec.hidden, "num_blocks": spec.num_blocks,
                "budget": f"top_k={spec.top_k}" if spec.gated else None,
                "estimator": spec.estimator, "anneal_epochs": spec.anneal_epochs,
                "teacher": spec.teacher, "warm_start": spec.warm_start, "precision": precision,
                "epochs": args.epochs, "seeds": seeds, "test_errors": e,
                "test_error_mean": float(np.mean(e)),
                "test_error_sd": float(np.std(e, ddof=1)) if len(e) > 1 else 0.0,
                "active": spec.active_units / spec.hidden,
                "active_units": spec.active_units,
                "macs": spec.macs(784, 10), "cpu": cpu_name(), "threads": args.threads,
            })
    if args.skip_timing:
        return rows
    gated = {key: "condnet" in key[0] for key in timed}
    for batch in (1, 32):
        inputs = [np.ascontiguousarray(test_x[i * batch:(i + 1) * batch])
                  for i in range(min(64, len(test_x) // batch))]
        jobs = {key: (interpreter_for_batch(data, batch, args.threads, gated[key]), inputs)
                for key, data in timed.items()}
        medians = time_interleaved(jobs, args.timing_rounds, args.timing_runs, warmup=3)
        for row in rows:
            key = (row["name"], row["precision"])
            if key in medians:
                row[f"b{batch}_ms"] = medians[key] * 1e3
        print(f"timed batch {batch}", flush=True)
    return rows


# --------------------------------------------------------------------------- reporting


def markdown(rows, args):
    lines = [f"# Frontier: {args.dataset}", "",
             f"`python examples/frontier.py --dataset {args.dataset} ...` on {cpu_name()}, "
             f"LiteRT, {args.threads} thread(s), all models interleaved in one process. "
             f"Data: {rows[0]['train_size']} train / {rows[0]['val_size']} val / "
             f"{rows[0]['test_size']} test; {args.epochs} epochs, Adam 1e-3 cosine, batch "
             f"{args.batch_size}.", "",
             "| model | precision | active units | MACs | seeds | test error | per seed "
             "| b1 ms | b32 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: (PRECISIONS.index(r["precision"]), r.get("b1_ms", 0))):
        per_seed = ", ".join(f"{e:.4f}" for e in row["test_errors"])
        lines.append(
            f"| {row['name']} | {row['precision']} | {row['active_units']} | {row['macs']:,} | "
            f"{len(row['seeds'])} | {row['test_error_mean']:.4f} ± {row['test_error_sd']:.4f} | "
            f"{per_seed} | {row.get('b1_ms', float('nan')):.4f} | "
            f"{row.get('b32_ms', float('nan')):.4f} |")
    lines += ["", "## Ablation", "",
              "Every training lever on the same budget (float32 `.tflite` test error; a lever "
              "given to a condnet is given to the dense nets too: the `kd-` rows).", "",
              "| model | hidden | blocks | top-k | estimator | anneal epochs | warm start "
              "| teacher | seeds | test error | per seed |", "|---" * 11 + "|"]
    for row in sorted((r for r in rows if r["precision"] == "float32"),
                      key=lambda r: (r["model"], r["hidden"], r["name"])):
        lines.append(
            f"| {row['model']} | {row['hidden']} | {row['num_blocks'] or '-'} | "
            f"{row['budget'] or '-'} | {row['estimator'] or '-'} | "
            f"{row['anneal_epochs'] if row['model'] == 'condnet' else '-'} | "
            f"{row.get('warm_start') or '-'} | {row['teacher'] or '-'} | {len(row['seeds'])} | "
            f"{row['test_error_mean']:.4f} ± {row['test_error_sd']:.4f} | "
            + ", ".join(f"{e:.4f}" for e in row["test_errors"]) + " |")
    lines += ["", "## Dominance", "", "Dominated: a model some dense net beats at batch 1 on "
              "both test error (mean) and latency in the same precision.", ""]
    for row in rows:
        if row["model"] != "condnet":
            continue
        faster = [d for d in rows if d["model"] == "dense" and d["precision"] == row["precision"]
                  and d.get("b1_ms", 1e9) <= row.get("b1_ms", 0)]
        better = [d["name"] for d in faster if d["test_error_mean"] <= row["test_error_mean"]]
        verdict = (f"dominated by {', '.join(better)}" if better
                   else "**not dominated**" + _margin(row, faster))
        lines.append(f"- {row['name']} ({row['precision']}): {verdict}")
    return "\n".join(lines) + "\n"


def _margin(row, faster):
    """How far a non-dominated condnet is ahead of the most accurate of the `faster` dense nets."""
    if not faster:
        return " (no dense net is as fast)"
    best = min(faster, key=lambda d: d["test_error_mean"])
    gap = best["test_error_mean"] - row["test_error_mean"]
    sd = max(best["test_error_sd"], row["test_error_sd"])
    return (f" (the most accurate dense net at least as fast, {best['name']} at "
            f"{best['b1_ms']:.4f} ms, is {gap:.4f} less accurate: "
            f"{gap / sd if sd else float('inf'):.1f} sd of the seeds)")


def plot(rows, path, title):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PRECISIONS), figsize=(5 * len(PRECISIONS), 4.2),
                             sharey=True)
    for ax, precision in zip(axes, PRECISIONS):
        these = [r for r in rows if r["precision"] == precision and "b1_ms" in r]
        for distilled, style, label in ((False, "-o", "dense 784-H-H-10"),
                                        (True, "--o", "dense, distilled")):
            dense = sorted((r for r in these
                            if r["model"] == "dense" and (r["teacher"] is not None) == distilled),
                           key=lambda r: r["b1_ms"])
            if not dense:
                continue
            ax.errorbar([r["b1_ms"] for r in dense], [r["test_error_mean"] for r in dense],
                        yerr=[r["test_error_sd"] for r in dense], fmt=style, capsize=2,
                        color="gray" if distilled else "black", label=label)
            for r in dense:
                ax.annotate(str(r["hidden"]), (r["b1_ms"], r["test_error_mean"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        for r in (r for r in these if r["model"] == "condnet"):
            label = (f"{r['hidden']}/{r['num_blocks']} blocks, {r['budget']}, "
                     f"{r['estimator']}, anneal {r['anneal_epochs']}"
                     + (", warm start" if r.get("warm_start") else "")
                     + (", distilled" if r["teacher"] else ""))
            ax.errorbar([r["b1_ms"]], [r["test_error_mean"]], yerr=[r["test_error_sd"]],
                        fmt=MARKERS.get(r["estimator"], "^"),
                        mfc="none" if r["teacher"] is None else None, label=label, capsize=2)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("batch-1 latency, ms (LiteRT, 1 thread)")
        ax.set_title(precision)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test error (mean ± sd over seeds)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(labels) + 2) // 3), 1, 1))
    fig.savefig(path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    if not (args.measure_only or args.report_only):
        for seed in args.seeds:  # seed-major: a partial run has every model at seed 0 first
            for spec in args.specs:
                if args.only is None or spec.name in args.only:
                    train_one(spec, seed, args)
    if args.train_only:
        return 0
    stem = args.out / f"frontier_{args.dataset}"
    rows = json.loads(stem.with_suffix(".json").read_text()) if args.report_only else measure(args)
    if not rows:
        print("nothing trained yet", file=sys.stderr)
        return 1
    if args.skip_timing:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    stem.with_suffix(".md").write_text(markdown(rows, args))
    plot(rows, stem.with_suffix(".png"),
         f"{args.dataset}: test error vs batch-1 latency ({cpu_name()}; "
         f"{rows[0]['train_size']}/{rows[0]['val_size']}/{rows[0]['test_size']})")
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
