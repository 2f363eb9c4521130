"""Synchronous data-parallel training: batch statistics and noise per replica.

Under `tf.distribute` (MirroredStrategy, MultiWorkerMirroredStrategy, ...)
`train_step` runs once per replica on that replica's share of the global
batch. What the condnet's training computes from the whole batch (the mean
cost of the REINFORCE baseline, the gate regularizers' batch statistics) must
then be all-reduced to equal single-device training on the global batch, and
each replica must draw its own gate noise.

Only the TensorFlow backend runs replicas this way; on JAX and PyTorch every
function here takes its single-device branch (one replica), and TensorFlow is
imported only on the TensorFlow backend.
"""

import keras
from keras import ops

# Replica r of a synchronous tf.distribute run draws from the seed stream
# offset by r * REPLICA_SEED_STRIDE in the first seed component.
REPLICA_SEED_STRIDE = 1_000_003


def sync_replica_context():
    """The `tf.distribute` replica context when several replicas train in sync, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def num_replicas():
    """Replicas training in sync: the strategy's count on TensorFlow, else 1."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_share(value):
    """`value / num_replicas()`: this replica's share of a loss its gradients sum up.

    Each replica's gradients are summed over replicas, so a loss term every
    replica computes in full enters each one divided by the replica count,
    as Keras scales its compiled loss.
    """
    count = num_replicas()
    return value if count == 1 else ops.multiply(value, ops.cast(1.0 / count, value.dtype))


def replicas_total(value):
    """The inverse of `replica_share`: a replica's share back to the whole."""
    count = num_replicas()
    return value if count == 1 else ops.multiply(value, ops.cast(count, value.dtype))


def global_mean(values):
    """Mean of `values` over the global batch (all replicas)."""
    values = ops.cast(values, "float32")
    total = ops.sum(values)
    count = ops.cast(ops.shape(values)[0], "float32")
    context = sync_replica_context()
    if context is not None:
        import tensorflow as tf

        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return total / count


def global_batch_view(values, context):
    """All replicas' `values` stacked along axis 0, differentiable in this replica's rows.

    The value is the all-gathered global batch; its gradient flows only into
    the rows that came from this replica (`values - stop_gradient(values)`
    is exactly zero but carries the gradient), so no gradient has to cross
    replicas. Works with unequal per-replica batch sizes.
    """
    import tensorflow as tf

    local = ops.stop_gradient(values)
    gathered = context.all_gather(local, axis=0)
    size = tf.shape(values)[:1]
    sizes = context.all_gather(size, axis=0)
    begin = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    after = tf.shape(gathered)[0] - begin - size[0]
    paddings = [[begin, after]] + [[0, 0]] * (len(values.shape) - 1)
    return gathered + tf.pad(values - local, paddings)


def uniform_noise(shape, dtype, seed_generator):
    """U(0, 1) noise for the gate draws, an independent stream per replica.

    On one device this is `keras.random.uniform(shape, seed=seed_generator)`.
    Under `MirroredStrategy` / `MultiWorkerMirroredStrategy` every replica
    advances the same (mirrored) seed generator, so plain sampling would give
    every replica the same noise for its shard; here the replica's global id
    (which also tells workers apart) is folded into the seed, keeping runs
    reproducible from the seed (`tf.random.stateless_uniform`, as Keras' own
    TensorFlow backend samples).
    """
    context = sync_replica_context()
    if context is None:
        return keras.random.uniform(shape, dtype=dtype, seed=seed_generator)
    import tensorflow as tf

    seed = seed_generator.next()
    replica = context.replica_id_in_sync_group
    offset = tf.stack([tf.cast(replica, seed.dtype) * REPLICA_SEED_STRIDE,
                       tf.zeros((), seed.dtype)])
    seed = tf.cast(tf.math.floormod(seed + offset, tf.int32.max - 1), tf.int32)
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype)
