"""Callbacks: schedules of the gating targets and regularizer weights, NaN/Inf stops,
resumable backups, TensorBoard gate summaries."""

import json

import keras
import numpy as np
from keras.src.utils import file_utils, io_utils

from keras_condcomp.layers import REGULARIZER_WEIGHT_NAMES, GatedLayer
from keras_condcomp.validation import check_positive_int

SCHEDULABLE = ("tau",) + REGULARIZER_WEIGHT_NAMES


def linear_schedule(start, end, epochs):
    """`fn(epoch)` going linearly from `start` (epoch 0) to `end` (epoch >= epochs - 1)."""
    epochs = check_positive_int("epochs", epochs)

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
        layers = [layer for layer in self.model._flatten_layers() if isinstance(layer, GatedLayer)]
        for layer in layers:
            layer.set_gating(**values)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: GatingScheduler set {values}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = self.schedules[name](epoch)


def _is_finite(value):
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype="float64"))))
    except (TypeError, ValueError):
        return True  # Not a number (e.g. a string log entry): nothing to check.


class TerminateOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Stops training when the loss, the policy cost, the baseline or sigma is NaN/Inf.

    A drop-in replacement for `keras.callbacks.TerminateOnNaN` for
    `CondCompModel`: after every training batch it checks

    - `loss`: the compiled loss plus the gate regularizers;
    - `policy_loss`: the REINFORCE surrogate, i.e. the policy cost
      `mean((cost - b) * log pi)`;
    - `baseline`: the baseline used in the batch, and the moving average
      `model.baseline()` it was just updated to;
    - sigma: `CondCompModel` logs `<layer>_active` as NaN when a gated layer's
      sigma held a NaN/Inf in the batch (otherwise `noise < nan` silently turns
      the blocks off).

    On the first non-finite value it prints (and stores in `self.nonfinite`)
    which quantities went non-finite, then sets `model.stop_training = True`,
    or raises a `RuntimeError` with the same message if `raise_error=True`
    (like `TerminateOnNaN`). Metrics are running means over the epoch, so a
    value that went non-finite stays non-finite: nothing is missed between
    checks, also with `steps_per_execution > 1`.

    Args:
        raise_error: Boolean. If `True`, raise `RuntimeError` instead of
            stopping gracefully (other callbacks' `on_train_end` then do not
            run, so e.g. a `BackupAndRestore` backup is kept).
        verbose: If 1 (default), print the message when stopping.

    Attributes:
        nonfinite: `None`, or after stopping a dict `{quantity: value}` of the
            non-finite quantities, keyed by `"loss"`, `"policy_loss"`,
            `"baseline"` and `"sigma/<layer name>"`.
        message: `None`, or the message printed when stopping.

    Example:

    >>> model.fit(x, y, callbacks=[TerminateOnNonFinite()])
    """

    def __init__(self, raise_error=False, verbose=1):
        if not isinstance(raise_error, bool):
            raise ValueError(
                f"Argument `raise_error` must be a boolean. Received: raise_error={raise_error!r}"
            )
        super().__init__(raise_error=raise_error)
        self.verbose = verbose
        self.nonfinite = None
        self.message = None

    def on_train_begin(self, logs=None):
        self.nonfinite = None
        self.message = None

    def _check(self, logs):
        logs = logs or {}
        found = {}
        for key in ("loss", "policy_loss", "baseline"):
            if key in logs and not _is_finite(logs[key]):
                found[key] = float(np.asarray(logs[key], dtype="float64"))
        if hasattr(self.model, "baseline") and hasattr(self.model, "baseline_ema"):
            value = keras.ops.convert_to_numpy(self.model.baseline())
            if not _is_finite(value) and "baseline" not in found:
                found["baseline"] = float(value)
        layers = [layer for layer in self.model._flatten_layers() if isinstance(layer, GatedLayer)]
        for layer in layers:
            key = f"{layer.name}_active"
            if key in logs and not _is_finite(logs[key]):
                found[f"sigma/{layer.name}"] = float(np.asarray(logs[key], dtype="float64"))
        return found

    def on_batch_end(self, batch, logs=None):
        found = self._check(logs)
        if not found:
            return
        names = {
            "loss": "loss (compiled loss + gate regularizers)",
            "policy_loss": "policy cost (REINFORCE surrogate `policy_loss`)",
            "baseline": "baseline (moving average of the cost)",
        }
        parts = [
            f"{names.get(key, 'sigma of gated layer ' + repr(key[len('sigma/'):]))}={value}"
            for key, value in found.items()
        ]
        self.nonfinite = found
        self.message = (
            f"Batch {batch}: non-finite value(s) in training: {', '.join(parts)}. "
            "Terminating training."
        )
        if self.raise_error:
            raise RuntimeError(self.message)
        if self.verbose:
            io_utils.print_msg(self.message)
        self.model.stop_training = True


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that also resumes in the middle of an epoch.

    Keras' callback saves every `save_freq` batches but, on restart, only
    restores the epoch number: the interrupted epoch is run again from its
    first batch with the weights saved at the interruption, so the batches
    before the backup are trained on twice. This subclass records how many
    batches of the epoch were done and skips them (reading them from the data
    without training) when it restores, so that an interrupted and resumed
    `fit` gives the same weights, optimizer state, baseline and gate-sampling
    state as an uninterrupted one, provided the data arrive in the same order
    (e.g. `shuffle=False`, or a dataset whose order depends only on the epoch).

    The backup is `model.save_weights`, which for `CondCompModel` holds the
    weights, policies, tau and regularizer weights, the baseline, the
    optimizer state and the seed generators' states. Metric accumulators are
    not saved: the logged metrics of the resumed epoch cover only the batches
    run after the restart.

    Args:
        backup_dir, save_freq, double_checkpoint, delete_checkpoint: As in
            `keras.callbacks.BackupAndRestore`.

    Example:

    >>> model.fit(x, y, epochs=10, shuffle=False,
    ...           callbacks=[BackupAndRestore("/tmp/backup", save_freq=50)])
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        if isinstance(save_freq, bool) or (isinstance(save_freq, int) and save_freq < 1):
            raise ValueError(
                "Argument `save_freq` must be 'epoch' or a positive integer. "
                f"Received: save_freq={save_freq!r}"
            )
        super().__init__(backup_dir, save_freq=save_freq,
                         double_checkpoint=double_checkpoint,
                         delete_checkpoint=delete_checkpoint)
        self._batches_done = 0
        self._skip_batches = 0

    def _load_model(self):
        super()._load_model()
        self._skip_batches = 0
        if not file_utils.exists(self._training_metadata_path):
            return
        with file_utils.File(self._training_metadata_path, "r") as f:
            metadata = json.loads(f.read())
        done = metadata.get("batches_done", 0)
        if done <= 0:
            return
        steps = (self.params or {}).get("steps")
        if steps is not None and done >= steps:
            # The backup was taken after the epoch's last batch.
            self.model._initial_epoch = metadata["epoch"] + 1
        else:
            self._skip_batches = done

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._skip_batches <= 0:
            return
        model = self.model
        train_function = model.train_function
        per_call = max(int(getattr(model, "steps_per_execution", 1) or 1), 1)
        remaining = [self._skip_batches]

        # TensorFlow calls `train_function(iterator) -> logs`, JAX
        # `train_function(state, iterator) -> (logs, state)`, PyTorch
        # `train_function([batch]) -> logs` with the batch already read.
        def skip_done_batches(*args):
            if remaining[0] <= 0:
                model.train_function = train_function
                return train_function(*args)
            if not isinstance(args[-1], list):
                for _ in range(min(per_call, remaining[0])):
                    next(args[-1])
            remaining[0] -= per_call
            return {} if len(args) == 1 else ({}, args[0])

        model.train_function = skip_done_batches

    def on_epoch_begin(self, epoch, logs=None):
        # Keras' callback only learns the epoch at its end, so a fresh callback
        # resuming in epoch e would back up mid-epoch states as epoch 0.
        self._current_epoch = epoch
        self._batches_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._batches_done = 0
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        super()._save_model()
        with file_utils.File(self._training_metadata_path, "w") as f:
            f.write(json.dumps({
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "batches_done": self._batches_done,
            }))


class GateSummaries(keras.callbacks.Callback):
    """Writes what the gates do to TensorBoard, so a user watches the policies form.

    Every `every_n_epochs` epochs it runs the model in inference mode on `x`
    and writes, per gated layer (tags `gates/<layer>/...`): `active_fraction`
    (scalar), `sigma` (histogram of all sigma values), `block_on_frequency`
    (histogram over blocks of how often each is on) and `block_<i>_on`
    scalars, and the `heatmap` image (examples x blocks, white = on,
    examples grouped by label when `y` is given).

        keras_condcomp.CondCompModel(network).fit(..., callbacks=[
            GateSummaries("logs", x_val[:512], y_val[:512])])
        # tensorboard --logdir logs

    Args:
        log_dir: Directory of the event files (a `gates` sub-directory is used).
        x: Inputs on which the gates are recorded (a validation subset).
        y: Optional labels of `x`, to group the heat map's rows by class.
        every_n_epochs: Positive integer.
    """

    def __init__(self, log_dir, x, y=None, every_n_epochs=1):
        super().__init__()
        every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        self.x = np.asarray(x)
        if self.x.ndim < 2 or len(self.x) == 0:
            raise ValueError("Argument `x` must be a non-empty batch of inputs. "
                             f"Received: x with shape {self.x.shape}")
        self.order = None
        if y is not None:
            y = np.asarray(y).reshape(-1)
            if len(y) != len(self.x):
                raise ValueError(f"Arguments `x` and `y` must have as many examples. "
                                 f"Received: {len(self.x)} and {len(y)}")
            self.order = np.argsort(y, kind="stable")
        self.log_dir = str(log_dir)
        self.every_n_epochs = every_n_epochs
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every_n_epochs:
            return
        import os

        import tensorflow as tf

        from keras_condcomp.gate_activity import gate_activations

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "gates"))
        activations = gate_activations(self.model, self.x)
        with self._writer.as_default(step=epoch):
            for name, gates in activations.items():
                mask = gates["mask"] if self.order is None else gates["mask"][self.order]
                frequency = mask.mean(axis=0)
                tf.summary.scalar(f"gates/{name}/active_fraction", float(mask.mean()))
                tf.summary.histogram(f"gates/{name}/sigma", gates["sigma"])
                tf.summary.histogram(f"gates/{name}/block_on_frequency", frequency)
                for block, value in enumerate(frequency):
                    tf.summary.scalar(f"gates/{name}/block_{block}_on", float(value))
                # Examples down, blocks across, each block a few pixels wide.
                width = max(1, 256 // mask.shape[1])
                image = np.repeat(mask, width, axis=1)[None, :, :, None].astype("float32")
                tf.summary.image(f"gates/{name}/heatmap", image)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
