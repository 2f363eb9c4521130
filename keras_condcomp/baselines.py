"""REINFORCE baselines: what each example's cost is compared with.

The REINFORCE estimate `mean_j (cost_j - b_j) grad log pi(u_j | x_j)` is
unbiased for any `b_j` that does not depend on example j's own mask sample;
a `b_j` close to the expected cost lowers its variance. Each class here
forms `b` from the bias-corrected moving average of the cost (`ema`, kept by
`CondCompModel`) and what it adds, behind one call:

    baseline, fit_loss = strategy(model, x, costs, ema, training)

`fit_loss` is a loss the strategy's own parameters minimize (0 when it has
none). `CondCompModel(baseline=name)` picks one by name (`BASELINES`).
"""

from keras import ops

from keras_condcomp.validation import check_positive_int


class EmaBaseline:
    """`b = ema`: the bias-corrected moving average of the cost (the paper's)."""

    name = "ema"
    needs_head = False

    def __call__(self, model, x, costs, ema, training):
        return ema, ops.zeros((), "float32")


class LearnedBaseline:
    """`b(x) = ema + c(x)`: c, a linear function of the flattened first input.

    c is the model's `baseline_head` (a `Dense(1)`, zeros at first), fitted by
    least squares to `cost - ema`; its gradient does not reach the policies.
    """

    name = "learned"
    needs_head = True

    def __call__(self, model, x, costs, ema, training):
        from keras import tree

        first = next(i for i in tree.flatten(x) if i is not None)
        features = ops.reshape(ops.cast(first, "float32"), (ops.shape(first)[0], -1))
        correction = ops.reshape(model.baseline_head(ops.stop_gradient(features)), (-1,))
        fit_loss = ops.mean(ops.square(costs - ops.stop_gradient(ema) - correction))
        return ema + ops.stop_gradient(correction), fit_loss


class LeaveOneOutBaseline:
    """`b_j` = the mean cost of the other `num_samples - 1` mask samples of example j.

    Training rows are `num_samples` copies of the batch (one mask sample
    each), so the other samples' costs are independent of sample j's mask.
    Evaluation, one copy, uses the EMA.
    """

    name = "leave_one_out"
    needs_head = False

    def __init__(self, num_samples):
        if num_samples < 2:
            raise ValueError(
                "baseline='leave_one_out' needs num_samples >= 2 (each sample's baseline is "
                f"the mean cost of the others). Received: num_samples={num_samples!r}"
            )
        self.num_samples = num_samples

    def __call__(self, model, x, costs, ema, training):
        if not training:
            return ema, ops.zeros((), "float32")
        per_sample = ops.reshape(costs, (self.num_samples, -1))
        others = (ops.sum(per_sample, axis=0, keepdims=True) - per_sample) / (
            self.num_samples - 1.0
        )
        return ops.reshape(others, (-1,)), ops.zeros((), "float32")


BASELINES = (EmaBaseline.name, LearnedBaseline.name, LeaveOneOutBaseline.name)


def get(name, num_samples=1):
    """The baseline strategy called `name`, for `num_samples` mask samples per example."""
    num_samples = check_positive_int("num_samples", num_samples)
    if name == EmaBaseline.name:
        return EmaBaseline()
    if name == LearnedBaseline.name:
        return LearnedBaseline()
    if name == LeaveOneOutBaseline.name:
        return LeaveOneOutBaseline(num_samples)
    raise ValueError(f"Argument `baseline` must be one of {BASELINES}. Received: baseline={name!r}")
