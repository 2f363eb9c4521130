"""Policy regularizers of Bengio et al. (2015), differentiable in sigma.

All take `sigma` of shape `(batch_size, num_blocks)`, the per-example block
probabilities of one gated layer, and return a scalar.
"""

from keras import ops


def block_balance_loss(sigma, tau):
    """L_b = sum_j | E_x[sigma_j] - tau |: each block is on a fraction tau of the time."""
    return ops.sum(ops.abs(ops.mean(sigma, axis=0) - tau))


def example_balance_loss(sigma, tau):
    """L_e = E_x | mean_j sigma_j - tau |: each example uses a fraction tau of the blocks."""
    return ops.mean(ops.abs(ops.mean(sigma, axis=1) - tau))


# Largest variance of a variable in [0, 1] (half its mass at 0, half at 1).
MAX_BERNOULLI_VARIANCE = 0.25


def variance_loss(sigma):
    """L_v = sum_j (1/4 - var_x(sigma_j)): rewards policies that differ between examples.

    Without it the policy can satisfy L_b and L_e with a constant
    `sigma = tau` for every example, which gates nothing usefully. The paper
    writes `-sum_j var_x(sigma_j)`; the constant `1/4` per block (the largest
    variance of a value in [0, 1]) changes no gradient but keeps the term,
    and so the logged `loss`, non-negative: `EarlyStopping` and
    `ModelCheckpoint` on `val_loss` then see a loss that falls as the model
    improves, not one dominated by a negative regularizer.
    """
    num_blocks = ops.cast(ops.shape(sigma)[-1], sigma.dtype)
    return MAX_BERNOULLI_VARIANCE * num_blocks - ops.sum(ops.var(sigma, axis=0))
