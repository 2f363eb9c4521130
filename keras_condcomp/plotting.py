"""Pictures of learned gating policies, like the paper's "Policies" figure.

Two kinds of figure:

* `plot_gate_heatmaps`: for each gated layer, an examples x blocks heat map of
  which blocks were on (examples grouped by class), and, given labels, the
  per-class activation frequency of each block;
* `plot_frequency_vs_tau`: for each gated layer, the activation frequency of
  every block (sorted) for models trained with different targets tau.

Gate activations are collected with `gate_activations(model, x)` and can be
stored with `save_gate_activations` (an `.npz`), which the command line reads:

    python -m keras_condcomp.plotting heatmap runs/digits/gates_tau0.5.npz --out heat.png
    python -m keras_condcomp.plotting frequency runs/digits/gates_tau*.npz --out freq.png

Figures are built with the object-oriented matplotlib API (no pyplot), so
nothing here changes the caller's matplotlib backend and no display is needed.
"""

import argparse
import sys

import numpy as np

from keras_condcomp.gate_activity import gate_activations  # noqa: F401 - re-exported
from keras_condcomp.validation import check_positive_int

_MASK_PREFIX = "mask__"
_SIGMA_PREFIX = "sigma__"


def block_frequencies(activations):
    """`{layer: (blocks,)}` fraction of examples for which each block was on."""
    return {name: arrays["mask"].mean(axis=0) for name, arrays in activations.items()}


def save_gate_activations(path, activations, labels=None, tau=None):
    """Writes gate activations (and optionally labels and tau) to an `.npz` file."""
    arrays = {}
    for name, layer_arrays in activations.items():
        arrays[_MASK_PREFIX + name] = layer_arrays["mask"]
        arrays[_SIGMA_PREFIX + name] = layer_arrays["sigma"]
    arrays["layer_names"] = np.array(list(activations), dtype=str)
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    if tau is not None:
        arrays["tau"] = np.float32(tau)
    np.savez_compressed(path, **arrays)


def load_gate_activations(path):
    """Reads a file written by `save_gate_activations`.

    Returns:
        Tuple `(activations, labels, tau)`; `labels` and `tau` are None when
        the file has none.
    """
    with np.load(path, allow_pickle=False) as contents:
        if "layer_names" not in contents:
            raise ValueError(
                f"{path} is not a gate activations file (no `layer_names`); "
                "write one with keras_condcomp.plotting.save_gate_activations."
            )
        names = [str(n) for n in contents["layer_names"]]
        activations = {
            name: {
                "mask": contents[_MASK_PREFIX + name],
                "sigma": contents[_SIGMA_PREFIX + name],
            }
            for name in names
        }
        labels = contents["labels"] if "labels" in contents else None
        tau = float(contents["tau"]) if "tau" in contents else None
    return activations, labels, tau


def _new_figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _examples_in_class_order(labels, num_examples, max_examples, seed=0):
    """Indices of at most `max_examples` examples, as many per class, sorted by class."""
    if labels is None:
        return np.arange(min(num_examples, max_examples))
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per_class = max(1, max_examples // len(classes))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        take = min(per_class, len(members))
        chosen.append(np.sort(rng.choice(members, size=take, replace=False)))
    return np.concatenate(chosen)


def plot_gate_heatmaps(activations, labels=None, max_examples=200, key="mask", title=None,
                       path=None):
    """Heat maps of which blocks each example turned on, one column per gated layer.

    Top row: examples (rows, grouped by class when `labels` is given) x blocks
    (columns); bright = block on. Bottom row (only with `labels`): for each
    class, the fraction of its examples that turned each block on, which shows
    whether the policy learned class-dependent computation paths.

    Args:
        activations: Output of `gate_activations` (or `load_gate_activations`).
        labels: Optional `(examples,)` integer class labels.
        max_examples: Positive integer, examples drawn in the top row.
        key: `"mask"` (0/1 decisions, default) or `"sigma"` (probabilities).
        title: Optional figure title.
        path: Optional file name; the figure is saved there (PNG by extension).

    Returns:
        The matplotlib `Figure`.
    """
    if not activations:
        raise ValueError(f"Argument `activations` is empty. Received: activations={activations!r}")
    if key not in ("mask", "sigma"):
        raise ValueError(f"Argument `key` must be 'mask' or 'sigma'. Received: key={key!r}")
    max_examples = check_positive_int("max_examples", max_examples)
    names = list(activations)
    num_examples = len(next(iter(activations.values()))[key])
    if labels is not None and len(labels) != num_examples:
        raise ValueError(
            f"Argument `labels` must have one label per example ({num_examples}). "
            f"Received: len(labels)={len(labels)}"
        )
    rows = 2 if labels is not None else 1
    figure = _new_figure(3.2 * len(names) + 0.8, 4.2 * rows)
    axes = np.asarray(figure.subplots(rows, len(names), squeeze=False))
    index = _examples_in_class_order(labels, num_examples, max_examples)
    image = None
    for column, name in enumerate(names):
        values = activations[name][key]
        ax = axes[0, column]
        image = ax.imshow(values[index], aspect="auto", interpolation="nearest",
                          cmap="viridis", vmin=0.0, vmax=1.0)
        active = float(activations[name]["mask"].mean())
        ax.set_title(f"{name}\nactive fraction {active:.2f}", fontsize=10)
        ax.set_xlabel("block")
        _block_ticks(ax, values.shape[1])
        if labels is not None:
            sorted_labels = np.asarray(labels)[index]
            boundaries = np.flatnonzero(np.diff(sorted_labels)) + 0.5
            for boundary in boundaries:
                ax.axhline(boundary, color="white", linewidth=0.6)
            centers = [np.flatnonzero(sorted_labels == c).mean() for c in np.unique(sorted_labels)]
            ax.set_yticks(centers, [str(c) for c in np.unique(sorted_labels)], fontsize=7)
            ax.set_ylabel("example (grouped by class)" if column == 0 else "")
            per_class = _class_frequencies(activations[name]["mask"], labels)
            class_ax = axes[1, column]
            class_ax.imshow(per_class, aspect="auto", interpolation="nearest",
                            cmap="viridis", vmin=0.0, vmax=1.0)
            class_ax.set_xlabel("block")
            class_ax.set_ylabel("class" if column == 0 else "")
            classes = np.unique(labels)
            class_ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
            _block_ticks(class_ax, values.shape[1])
            class_ax.set_title("fraction of the class's examples\nthat turn the block on",
                               fontsize=9)
        else:
            ax.set_ylabel("example" if column == 0 else "")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6,
                    label="block on" if key == "mask" else "sigma")
    if title:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


def _block_ticks(ax, num_blocks):
    step = max(1, int(np.ceil(num_blocks / 16)))
    ax.set_xticks(range(0, num_blocks, step))
    ax.tick_params(axis="x", labelsize=7)


def _class_frequencies(mask, labels):
    labels = np.asarray(labels)
    return np.stack([mask[labels == c].mean(axis=0) for c in np.unique(labels)])


def plot_frequency_vs_tau(frequencies_by_tau, title=None, path=None):
    """Per-block activation frequency for models trained with different tau.

    One panel per gated layer; for each tau, the frequencies of the blocks
    sorted from most to least used, with a dashed line at the target tau. A
    policy that met its target sits near its dashed line on average; a flat
    curve means every block is used as often, a steep one that some blocks
    specialise.

    Args:
        frequencies_by_tau: `{tau: {layer_name: (blocks,) frequencies}}`
            (e.g. `block_frequencies(...)` of one model per tau).
        title: Optional figure title.
        path: Optional file name to save the figure to.

    Returns:
        The matplotlib `Figure`.
    """
    if not frequencies_by_tau:
        raise ValueError(
            "Argument `frequencies_by_tau` is empty. "
            f"Received: frequencies_by_tau={frequencies_by_tau!r}"
        )
    from matplotlib.ticker import MaxNLocator

    names = []
    for per_layer in frequencies_by_tau.values():
        names.extend(n for n in per_layer if n not in names)
    figure = _new_figure(3.6 * len(names) + 0.6, 3.6)
    axes = np.asarray(figure.subplots(1, len(names), squeeze=False))[0]
    taus = sorted(frequencies_by_tau)
    colors = [f"C{i % 10}" for i in range(len(taus))]
    for ax, name in zip(axes, names):
        for tau, color in zip(taus, colors):
            if name not in frequencies_by_tau[tau]:
                continue
            freq = np.sort(np.asarray(frequencies_by_tau[tau][name]))[::-1]
            ax.plot(np.arange(len(freq)), freq, marker="o", markersize=3, color=color,
                    label=f"tau={tau:g} (mean {freq.mean():.2f})")
            ax.axhline(tau, color=color, linestyle="--", linewidth=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("block (sorted by frequency); dashed: target tau")
        ax.set_ylabel("activation frequency")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


# --------------------------------------------------------------------------- CLI


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m keras_condcomp.plotting",
        description="Plot gating policies from gate activation files (.npz) written by "
        "keras_condcomp.plotting.save_gate_activations (the examples write gates_tau*.npz).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    heatmap = commands.add_parser(
        "heatmap", help="examples x blocks heat map (and per-class frequencies) per layer"
    )
    heatmap.add_argument("gates", help="gate activations .npz file")
    heatmap.add_argument("--out", required=True, help="output image file (e.g. heat.png)")
    heatmap.add_argument("--max-examples", type=int, default=200,
                         help="examples drawn in the heat map (default: 200)")
    heatmap.add_argument("--sigma", action="store_true",
                         help="draw the probabilities sigma instead of the 0/1 decisions")
    heatmap.add_argument("--title", default=None, help="figure title")
    frequency = commands.add_parser(
        "frequency", help="per-block activation frequency, one curve per file's tau"
    )
    frequency.add_argument("gates", nargs="+", help="gate activations .npz files, one per tau")
    frequency.add_argument("--out", required=True, help="output image file (e.g. freq.png)")
    frequency.add_argument("--title", default=None, help="figure title")
    return parser


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "heatmap":
        activations, labels, tau = load_gate_activations(args.gates)
        title = args.title or (f"gates, tau={tau:g}" if tau is not None else "gates")
        plot_gate_heatmaps(activations, labels=labels, max_examples=args.max_examples,
                           key="sigma" if args.sigma else "mask", title=title, path=args.out)
    else:
        frequencies_by_tau = {}
        for path in args.gates:
            activations, _, tau = load_gate_activations(path)
            if tau is None:
                raise ValueError(f"{path} stores no tau; it cannot be placed on a tau axis.")
            if tau in frequencies_by_tau:
                raise ValueError(f"Two files have tau={tau:g}; give one file per tau.")
            frequencies_by_tau[tau] = block_frequencies(activations)
        plot_frequency_vs_tau(frequencies_by_tau, title=args.title, path=args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
