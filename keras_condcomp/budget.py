"""Budget calibration: set each gated layer's inference threshold from data.

After training, the deterministic rule `sigma > threshold` with the default
threshold 0.5 activates whatever fraction of blocks the policy happens to
give. `calibrate_thresholds` sets every gated layer's threshold so that its
mean active fraction on a calibration set equals a target (by default the
layer's current `tau`). The thresholds live in the policy's config, so the
Keras call, `keras_condcomp.sparse` and the TFLite custom ops (which read the
threshold at conversion) all honour them, and they survive saving.
"""

import numbers

import numpy as np
from keras import ops

from keras_condcomp.gate_activity import gate_activations
from keras_condcomp.layers import gated_layers
from keras_condcomp.policy import check_top_k
from keras_condcomp.validation import check_positive_int, check_probability


def gate_sigmas(model, x, batch_size=256):
    """Per-layer `(examples, num_blocks)` sigma arrays of `model` on `x` (inference rule)."""
    return {name: gates["sigma"]
            for name, gates in gate_activations(model, x, batch_size).items()}


def _reset_compiled_functions(model):
    # The threshold is a Python float baked into traced functions.
    for attr in ("predict_function", "test_function", "train_function"):
        if hasattr(model, attr):
            setattr(model, attr, None)


def calibrate_thresholds(model, x, target=None, batch_size=256):
    """Sets each gated layer's threshold so that its mean active fraction on `x` is `target`.

    Layers are calibrated in call order, each with the thresholds of the
    layers before it already set, since those change its input. The
    threshold of a layer is the `1 - target` quantile of its sigma values on
    `x`, so `mean(sigma > threshold)` is `target` up to ties.

    Args:
        model: A Keras model (e.g. `CondCompModel` or its network) with gated
            layers; its compiled predict/evaluate functions are reset.
        x: Calibration inputs (NumPy array): a validation split, not the
            test set.
        target: Float in (0, 1], a `{layer name: float}` dict, or `None` for
            each layer's current `tau`.
        batch_size: Positive integer.

    Returns:
        `{layer name: threshold}`.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "Argument `x` must be a non-empty batch of inputs. "
            f"Received: x with shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("Argument `x` must be finite: calibration data holds NaN or Inf.")
    layers = gated_layers(model)
    if not layers:
        raise ValueError(f"Argument `model` has no gated layer. Received: model={model.name!r}")
    names = [layer.name for layer in layers]
    if isinstance(target, dict):
        unknown = sorted(set(target) - set(names))
        if unknown:
            raise ValueError(
                f"Argument `target` names layers that are not gated layers: {unknown}. "
                f"Gated layers: {names}. Received: target={target!r}"
            )
    elif target is not None and not isinstance(target, numbers.Real):
        raise ValueError(
            "Argument `target` must be a float, a dict of floats or None. "
            f"Received: target={target!r}"
        )
    thresholds = {}
    for layer in layers:
        if isinstance(target, dict):
            goal = target.get(layer.name, float(ops.convert_to_numpy(layer.tau)))
        elif target is None:
            goal = float(ops.convert_to_numpy(layer.tau))
        else:
            goal = target
        check_probability("target", goal)
        sigma = gate_sigmas(model, x, batch_size)[layer.name].ravel()
        threshold = float(np.quantile(sigma, 1.0 - float(goal), method="higher"))
        # `sigma > threshold` is strict: step just below the quantile so that
        # the examples at it count as on.
        threshold = float(np.clip(np.nextafter(np.float32(threshold), np.float32(0)), 0.0, 1.0))
        layer.policy.threshold = threshold
        thresholds[layer.name] = threshold
    _reset_compiled_functions(model)
    return thresholds


def set_top_k(model, top_k):
    """Gives every example exactly `top_k` blocks per gated layer at inference (or `None`).

    A fixed per-example cost (a latency bound) instead of the threshold rule,
    under which an example's number of blocks varies. Honoured by every
    path: the Keras call, `keras_condcomp.sparse` and the TFLite ops (float
    and int8), which get it as their `top_k` option; all rank the blocks by
    policy logit, the lowest index first among equals
    (`keras_condcomp.reference.top_k_mask`).

    Args:
        model: A Keras model with gated layers; compiled functions are reset.
        top_k: Positive integer <= every layer's `num_blocks`, or None.
    """
    layers = gated_layers(model)
    for layer in layers:
        check_top_k(top_k, layer.num_blocks)
    for layer in layers:
        layer.policy.top_k = top_k
    _reset_compiled_functions(model)
