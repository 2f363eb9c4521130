"""Callbacks that change the gating targets and regularizer weights during training."""

import keras

from keras_condcomp.layers import REGULARIZER_WEIGHT_NAMES, GatedLayer

SCHEDULABLE = ("tau",) + REGULARIZER_WEIGHT_NAMES


def linear_schedule(start, end, epochs):
    """`fn(epoch)` going linearly from `start` (epoch 0) to `end` (epoch >= epochs - 1)."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"Argument `epochs` must be a positive integer. Received: epochs={epochs!r}")

    def schedule(epoch):
        if epochs == 1:
            return float(end)
        t = min(max(epoch / (epochs - 1), 0.0), 1.0)
        return float(start + t * (end - start))

    return schedule


class GatingScheduler(keras.callbacks.Callback):
    """Sets tau and/or regularizer weights of every gated layer at each epoch start.

    Annealing tau from 1 (all blocks on) down to its target lets the network
    learn useful features before the policy starts switching blocks off,
    which eases the chicken-and-egg problem of learning both at once.

    Args:
        **schedules: `name=fn(epoch) -> float` for names in `"tau"`,
            `"block_balance_weight"`, `"example_balance_weight"`,
            `"variance_weight"`.
        verbose: If 1, print the values set at each epoch.

    Example:

    >>> model.fit(x, y, epochs=20, callbacks=[
    ...     GatingScheduler(tau=linear_schedule(1.0, 0.25, epochs=10))])
    """

    def __init__(self, verbose=0, **schedules):
        super().__init__()
        if not schedules:
            raise ValueError(f"Give at least one schedule among {SCHEDULABLE}. Received: none")
        for name, fn in schedules.items():
            if name not in SCHEDULABLE:
                raise ValueError(
                    f"Unknown schedule {name!r}; expected one of {SCHEDULABLE}. "
                    f"Received: {name}={fn!r}"
                )
            if not callable(fn):
                raise ValueError(f"Schedule `{name}` must be callable. Received: {name}={fn!r}")
        self.schedules = schedules
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        values = {name: fn(epoch) for name, fn in self.schedules.items()}
        layers = [l for l in self.model._flatten_layers() if isinstance(l, GatedLayer)]
        for layer in layers:
            layer.set_gating(**values)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: GatingScheduler set {values}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = self.schedules[name](epoch)
