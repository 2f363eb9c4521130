"""`CondCompModel`'s steps on the TensorFlow backend: a gradient tape, tf.distribute."""

import keras
import tensorflow as tf


class TensorFlowTrainStep:
    """Train and test steps of `CondCompModel` for `keras/src/backend/tensorflow/trainer.py`."""

    def train_step(self, data):
        x, y, sample_weight = self._repeat_batch(*keras.utils.unpack_x_y_sample_weight(data))
        with tf.GradientTape() as tape:
            y_pred, loss, mean_cost = self._training_loss(x, y, sample_weight)
        variables = self.trainable_variables
        self._apply_gradients(tape.gradient(loss, variables), variables)
        self._update_baseline(mean_cost)
        return self._reducible_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self._forward(x, y, sample_weight, training=False)[0]
        return self._reducible_logs(
            self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 builds the metrics and optimizer from the first batch, which
        # it reduces with `strategy.reduce("MEAN", ...)`; that fails in eager
        # mode under MultiWorkerMirroredStrategy (keras-team/keras#20585:
        # "Attempt to convert a value (PerReplica...) to a Tensor"). Only
        # shapes and dtypes matter here, so use this worker's first shard.
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    batch,
                )
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        # Without a strategy Keras builds nothing here (the optimizer is built
        # by its first update, on the variables it updates); the policy
        # optimizer is built now, so its state loads before the first step.
        self._build_policy_optimizer()

    def _reducible_logs(self, logs):
        # Keras 3 reduces `train_step`'s outputs across workers with
        # `strategy.reduce("MEAN", value, axis=0)` under multi-worker
        # MultiWorkerMirroredStrategy, which fails on scalars ("Invalid
        # reduction dimension 0 for input with 0 dimensions",
        # keras-team/keras#20585). Shape `(1,)` values reduce to the mean over
        # replicas, a scalar, as on one machine.
        strategy = self.distribute_strategy
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
            getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
        )
        if not multi_worker:
            return logs
        return {
            key: tf.reshape(value, [1]) if len(getattr(value, "shape", (0,))) == 0 else value
            for key, value in logs.items()
        }
