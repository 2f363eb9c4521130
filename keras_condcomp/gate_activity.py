"""What the gates decide on data: per-layer masks and sigma, and a text summary.

`gate_activations(model, x)` records every gated layer's mask and sigma in
inference mode; `summary(model, x)` turns them into the table a user reads
before deploying (blocks, block size, target tau, measured active fraction,
its spread over examples, multiply-adds vs dense). `tflite/convert.py` prints
the same table for the model it converts.
"""

import numpy as np

from keras_condcomp.layers import GatedConv2D, gated_layers
from keras_condcomp.validation import check_positive_int


def gate_activations(model, x, batch_size=256):
    """Runs `model` in inference mode on `x` and records every gated layer's gates.

    Args:
        model: A `CondCompModel` or any Keras model holding gated layers.
        x: Array of inputs.
        batch_size: Positive integer, examples per forward pass.

    Returns:
        Dict `{layer_name: {"mask": (examples, blocks), "sigma": (examples,
        blocks), "input_active": (examples,), "macs": (main, policy)}}`, numpy
        arrays (float32) in call order; `input_active` is the fraction of the
        layer's input units that can be non-zero (the previous gated layer's
        mask), `macs` the layer's dense multiply-adds per example.
    """
    from keras import ops

    batch_size = check_positive_int("batch_size", batch_size)
    layers = gated_layers(model)
    if not layers:
        raise ValueError(
            "Argument `model` holds no gated layer (GatedDense or GatedConv2D). "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    collected = {layer.name: {"mask": [], "sigma": [], "input_active": []} for layer in layers}
    macs = {}
    x = np.asarray(x)
    for start in range(0, len(x), batch_size):
        # An eager call leaves each layer's `gate_outputs` as concrete tensors.
        model(x[start : start + batch_size], training=False)
        for layer in layers:
            outputs = layer.gate_outputs
            collected[layer.name]["mask"].append(ops.convert_to_numpy(outputs.mask))
            collected[layer.name]["sigma"].append(ops.convert_to_numpy(outputs.sigma))
            collected[layer.name]["input_active"].append(
                ops.convert_to_numpy(outputs.input_active))
            macs[layer.name] = tuple(int(ops.convert_to_numpy(m)) for m in outputs.macs)
    result = {}
    for name, arrays in collected.items():
        result[name] = {key: np.concatenate(parts).astype(np.float32)
                        for key, parts in arrays.items()}
        result[name]["macs"] = macs[name]
    return result


def summary(model, x, batch_size=256, print_fn=print):
    """Prints (and returns) a per-gated-layer table of what the gates do on `x`.

    Columns: blocks, block size, target tau (the layer's current `tau`), the
    inference rule (threshold or top-k), the measured mean active fraction,
    min / median / max of the per-example active fraction, and the layer's
    multiply-adds as gated (mean over `x`, policy included) vs dense.

    Args:
        model: A `CondCompModel` or any Keras model holding gated layers.
        x: Inputs (a validation or test split).
        batch_size: Positive integer.
        print_fn: Called with the table text; `None` prints nothing.

    Returns:
        The table as a string.
    """
    from keras import ops

    batch_size = check_positive_int("batch_size", batch_size)
    activations = gate_activations(model, x, batch_size)
    header = ("layer", "blocks", "block size", "tau", "rule", "active", "per example min/med/max",
              "MACs gated / dense")
    rows = []
    total_gated = total_dense = 0.0
    for layer in gated_layers(model):
        gates = activations[layer.name]
        per_example = gates["mask"].mean(axis=1)
        main, policy = gates["macs"]
        gated = float(np.mean(gates["input_active"] * per_example)) * main + float(
            np.mean(gates["input_active"])) * policy
        total_gated += gated
        total_dense += main
        rule = (f"top-{layer.policy.top_k}" if layer.policy.top_k is not None
                else f"sigma > {layer.threshold:.4g}")
        kind = "conv" if isinstance(layer, GatedConv2D) else "dense"
        rows.append((
            f"{layer.name} ({kind})", str(layer.num_blocks), str(layer.block_size),
            f"{float(ops.convert_to_numpy(layer.tau)):.3g}", rule, f"{per_example.mean():.3f}",
            f"{per_example.min():.3f} / {np.median(per_example):.3f} / {per_example.max():.3f}",
            f"{gated / 1e6:.3g}M / {main / 1e6:.3g}M ({gated / main:.3f})",
        ))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.append(f"gated layers together: {total_gated / max(total_dense, 1):.3f} of the dense "
                 f"multiply-adds over {len(x)} examples")
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
