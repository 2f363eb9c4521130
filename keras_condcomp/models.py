"""`CondCompModel`: trains a network of gated layers and their policies together."""

import warnings

import keras
import numpy as np
from keras import ops

from keras_condcomp import baselines
from keras_condcomp.distillation import DistillationMixin
from keras_condcomp.flops import gated_flop_fraction
from keras_condcomp.layers import gated_layers
from keras_condcomp.policy import ESTIMATORS
from keras_condcomp.replicas import (
    global_batch_view,
    global_mean,
    replica_share,
    replicas_total,
    sync_replica_context,
)
from keras_condcomp.trainers import BackendTrainStep
from keras_condcomp.validation import check_positive_int


def reinforce_surrogate(cost, baseline, log_prob, sample_weight=None):
    """Surrogate whose gradient is the REINFORCE estimate of grad E[cost].

    `grad_w mean_j (cost_j - b) log pi(u_j | x_j)`, with the advantage
    `cost - b` held constant, is an unbiased estimate of the gradient of the
    expected cost over the minibatch; the baseline `b` only lowers variance.

    Args:
        cost: `(batch,)` per-example costs (gradients are stopped).
        baseline: Scalar baseline.
        log_prob: `(batch,)` log pi(u|x), summed over the gated layers.
        sample_weight: Optional `(batch,)` weights.
    """
    advantage = ops.stop_gradient(ops.cast(cost, log_prob.dtype) - baseline)
    terms = advantage * log_prob
    if sample_weight is not None:
        terms = terms * ops.cast(ops.reshape(sample_weight, ops.shape(terms)), terms.dtype)
    return ops.mean(terms)


def per_example_loss_fn(loss):
    """Returns `fn(y_true, y_pred) -> (batch,)` for a compiled Keras loss."""
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]  # `compile(loss=[fn])` of a single-output model
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            "CondCompModel needs one loss to derive each example's cost; pass "
            "`cost=fn(y_true, y_pred)` to CondCompModel for multi-output models. "
            f"Received: loss={loss!r}"
        )
    if loss is None:
        return None
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # `call` is the unreduced per-example loss.
    fn = keras.losses.get(loss)
    if isinstance(fn, keras.losses.Loss):
        return fn.call
    return fn


# Keys under which `CondCompModel.save_own_variables` stores the states of the
# `keras.random.SeedGenerator`s of its layers (Keras does not save them itself).
SEED_STATE_KEY = "seed_generator_state_{}"


def _reduce_to_batch(values):
    values = ops.cast(values, "float32")
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values


@keras.saving.register_keras_serializable(package="keras_condcomp")
class CondCompModel(DistillationMixin, BackendTrainStep, keras.Model):
    """Wraps a Keras model of gated layers; `fit` trains the network and its policies.

    `train_step` does, for each minibatch:

    1. a forward pass with sampled block masks;
    2. the compiled loss plus the gated layers' regularizers (L_b, L_e, L_v),
       differentiated with respect to everything (the masked network's
       weights theta, and the policies through the regularizers);
    3. with `estimator="reinforce"` (the paper's), the REINFORCE surrogate
       `policy_weight * mean((cost - b) * log pi)`, where `cost` is each
       example's own compiled loss (or `cost(y, y_pred)`) and `b` is an
       exponential moving average of past costs; with
       `estimator="straight_through"` or `"gumbel"` the policies learn by
       backprop through the hard masks instead (see below) and there is no
       surrogate;
    4. one optimizer step on the sum, then the baseline update.

    The baseline is bias-corrected like Adam's moments, so the first batches
    are not compared with a baseline of zero. `evaluate` and `predict` use the
    deterministic inference rule (`sigma > threshold`, or each example's
    `top_k` blocks).

    Losses, as Keras callbacks read them: the training `loss` is what the
    optimizer minimizes (the compiled loss plus the gate regularizers; the
    REINFORCE surrogate, a gradient estimator rather than a loss, is logged
    apart as `policy_loss`); `val_loss` is the compiled loss of the model as
    it will be deployed (inference masks and budget, no gate regularizers),
    so `EarlyStopping`, `ModelCheckpoint(save_best_only=True)` and
    `ReduceLROnPlateau` on their default monitors select on the task.

    Also logged every epoch: `gate_loss` (the gate regularizers' sum),
    `task_loss` (the mean per-example cost), `policy_loss`,
    `baseline`, `flop_fraction` (gated
    layers' multiply-adds over the same layers run densely, policies
    included) and `<layer>_active` (fraction of active blocks per layer).

    Args:
        network: A built Keras model or layer (e.g. `keras.Sequential`)
            containing at least one `GatedDense`/`GatedConv2D`.
        baseline_decay: Float in [0, 1), decay of the cost moving average.
        policy_weight: Float >= 0, weight of the REINFORCE surrogate.
        cost: Optional `fn(y_true, y_pred) -> (batch,)` cost to minimize by
            REINFORCE instead of the compiled loss.
        baseline: How the REINFORCE baseline `b` is formed:
            `"ema"` (default): the bias-corrected moving average of the cost;
            `"learned"`: the EMA plus an input-dependent correction, a linear
            function of the flattened first input fitted by least squares to
            `cost - ema` (the `baseline_head` layer);
            `"leave_one_out"`: with `num_samples=K >= 2` mask samples per
            example, each sample's baseline is the mean cost of the other
            `K - 1` samples of the same example.
        num_samples: Positive integer K, mask samples drawn per example in
            each training step (the batch is run K times, at K times the
            cost); the network and policy gradients average over them.
        estimator: How the policies learn. `"straight_through"` (default):
            hard masks in the forward pass, with the gradient of sigma in the
            backward pass (`keras_condcomp.policy.straight_through`), so each
            policy learns by backprop what its blocks' outputs do to the loss;
            a layer with a `top_k` budget trains with the masks of its
            inference rule (its blocks of largest sigma: tau's share of them
            while a `GatingScheduler` anneals tau from 1, never fewer than
            `top_k`), one without with Bernoulli samples. `"gumbel"`: the
            same, with the hard masks taken from the logits plus logistic
            noise and the gradient of
            `sigmoid((logits + noise) / gumbel_temperature)` (straight-through
            Gumbel-sigmoid), so training explores other blocks than the
            top-ranked ones. `"routing"`: the masks of the inference rule
            in training too (as `"straight_through"` ranks them) with no
            gradient of their own; the policies learn by backprop through
            the gate values that scale the blocks' outputs, so every gated
            layer must be built with `scale_by_gate=True` (top-k routing of
            mixture-of-experts routers; L_b balances the load).
            `"reinforce"` (the paper's): masks `u ~ Bernoulli(sigma)` and the
            REINFORCE surrogate above, with `baseline`, `num_samples` and
            `policy_weight`. The default is
            what trained the most accurate condnets of the frontier
            (README, Results: with a dense teacher on MNIST and
            Fashion-MNIST, and without one on Fashion-MNIST, where REINFORCE
            was unstable).
        teacher: Optional trained Keras model on the same inputs: adds
            `distillation_weight` times the mean distillation term
            `keras_condcomp.distillation.distillation_loss(y_pred,
            teacher(x), temperature)` to the training loss (not to the
            REINFORCE cost, nor to `val_loss`). Not saved with the model.
            Give the dense nets it is compared with the same teacher
            (`keras_condcomp.Distiller`).
        distillation_weight: Float >= 0, weight of the distillation term.
        temperature: Float > 0, its softmax temperature.
        distillation_from_logits: Whether the network's and the teacher's
            outputs are logits (default: probabilities).
        gumbel_temperature: Float > 0, the temperature of the
            `estimator="gumbel"` gradient (lower: closer to the hard mask's,
            higher variance).
        **kwargs: Keyword arguments of `keras.Model`, such as `name`.

    Call arguments:
        inputs: Inputs of `network`.
        training: Python boolean, sample the gates when `True`.

    Example:

    >>> network = keras.Sequential([
    ...     keras.Input((784,)),
    ...     GatedDense(512, num_blocks=16, activation="relu", tau=0.25),
    ...     GatedDense(512, num_blocks=16, activation="relu", tau=0.25),
    ...     keras.layers.Dense(10, activation="softmax"),
    ... ])
    >>> model = CondCompModel(network)
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> model.fit(x, y, epochs=10, callbacks=[keras.callbacks.EarlyStopping()])
    """

    def __init__(self, network, baseline_decay=0.9, policy_weight=1.0, cost=None,
                 baseline="ema", num_samples=1, estimator="straight_through", teacher=None,
                 distillation_weight=1.0, temperature=2.0, distillation_from_logits=False,
                 gumbel_temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self._init_distillation(teacher, distillation_weight, temperature,
                                distillation_from_logits)
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"Argument `estimator` must be one of {ESTIMATORS}. "
                f"Received: estimator={estimator!r}"
            )
        if (not isinstance(gumbel_temperature, (int, float)) or isinstance(gumbel_temperature, bool)
                or not 0.0 < gumbel_temperature < float("inf")):
            raise ValueError(
                "Argument `gumbel_temperature` must be a finite number > 0. "
                f"Received: gumbel_temperature={gumbel_temperature!r}"
            )
        if estimator != "reinforce" and baseline != "ema":
            raise ValueError(
                f"Argument `baseline` is a REINFORCE baseline; estimator={estimator!r} uses "
                f"none (pass estimator='reinforce' to use it). Received: baseline={baseline!r}"
            )
        num_samples = check_positive_int("num_samples", num_samples)
        self._baseline = baselines.get(baseline, num_samples)
        if not isinstance(network, keras.layers.Layer):
            raise ValueError(
                "Argument `network` must be a Keras model or layer. "
                f"Received: network={network!r}"
            )
        if (
            not isinstance(baseline_decay, (int, float))
            or isinstance(baseline_decay, bool)
            or not 0.0 <= baseline_decay < 1.0
        ):
            raise ValueError(
                "Argument `baseline_decay` must be a number in [0, 1). "
                f"Received: baseline_decay={baseline_decay!r}"
            )
        if (
            not isinstance(policy_weight, (int, float))
            or isinstance(policy_weight, bool)
            or not 0.0 <= policy_weight < float("inf")
        ):
            raise ValueError(
                "Argument `policy_weight` must be a finite number >= 0. "
                f"Received: policy_weight={policy_weight!r}"
            )
        if cost is not None and not callable(cost):
            raise ValueError(
                f"Argument `cost` must be callable or None. Received: cost={cost!r}"
            )
        self.network = network
        self.baseline_decay = float(baseline_decay)
        self.policy_weight = float(policy_weight)
        self.cost = cost
        self.baseline_kind = baseline
        self.num_samples = num_samples
        self.estimator = estimator
        self.gumbel_temperature = float(gumbel_temperature)
        # Input-dependent correction of the EMA baseline (baseline="learned"),
        # a linear function of the flattened first input, fitted by least squares.
        self.baseline_head = (
            keras.layers.Dense(1, kernel_initializer="zeros", name="baseline_head")
            if self._baseline.needs_head else None
        )
        self._per_example_loss = None
        self.policy_optimizer = None
        gated = gated_layers(network)
        if not gated:
            raise ValueError(
                "Argument `network` contains no gated layer (GatedDense or "
                f"GatedConv2D). Received: network={network.name!r}"
            )
        names = [layer.name for layer in gated]
        if len(set(names)) != len(names):
            raise ValueError(f"Gated layers must have unique names. Received: {names}")
        unscaled = [layer.name for layer in gated if not layer.scale_by_gate]
        if estimator == "routing" and unscaled:
            raise ValueError(
                "estimator='routing' trains the policies only through the gate values that "
                "scale the blocks' outputs: build every gated layer with scale_by_gate=True. "
                f"Received: layers with scale_by_gate=False: {unscaled}"
            )
        self._gated_layers = gated
        for layer in gated:
            layer._trained_by_condcomp = True
            layer.policy.estimator = estimator
            layer.policy.gumbel_temperature = self.gumbel_temperature
        # Raw (not bias-corrected) EMA of the cost; "mean" aggregation averages
        # the update over replicas under tf.distribute.
        self.baseline_ema = self.add_weight(
            name="baseline_ema", shape=(), initializer="zeros", trainable=False,
            aggregation="mean",
        )
        self.baseline_updates = self.add_weight(
            name="baseline_updates", shape=(), initializer="zeros", trainable=False,
            aggregation="only_first_replica",
        )
        self.policy_loss_tracker = keras.metrics.Mean(name="policy_loss")
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.gate_loss_tracker = keras.metrics.Mean(name="gate_loss")
        self.grad_var_tracker = keras.metrics.Mean(name="policy_grad_var")
        self.baseline_tracker = keras.metrics.Mean(name="baseline")
        self.flop_fraction_tracker = keras.metrics.Mean(name="flop_fraction")
        self.active_trackers = [keras.metrics.Mean(name=f"{name}_active") for name in names]

    def compile(self, optimizer="rmsprop", *args, policy_optimizer=None, **kwargs):
        """`keras.Model.compile`, plus an optional separate optimizer for the policies.

        Args:
            policy_optimizer: Optional optimizer (instance or name) for the
                policy weights of the gated layers; the paper trains them
                with a much smaller learning rate than the network. `None`
                (default): `optimizer` trains everything. Its state is saved
                with the model like `optimizer`'s.
            *args, **kwargs: Arguments of `keras.Model.compile`.
        """
        super().compile(optimizer, *args, **kwargs)
        self.policy_optimizer = (
            None if policy_optimizer is None else keras.optimizers.get(policy_optimizer)
        )

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and self.policy_optimizer is not None:
            config = dict(config)
            config["policy_optimizer"] = keras.saving.serialize_keras_object(
                self.policy_optimizer
            )
        return config

    def compile_from_config(self, config):
        # `compile` is overridden, so Keras' own compile_from_config would skip it.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            # The variables each optimizer updates (see `_apply_gradients`), so
            # their saved states load slot for slot.
            self.optimizer.build(self._network_variables())
            self._build_policy_optimizer()

    def _policy_variables(self):
        return [v for layer in self._gated_layers for v in layer.policy.trainable_variables]

    def _network_variables(self):
        """The trainable variables `optimizer` updates (all, without a policy optimizer)."""
        if self.policy_optimizer is None:
            return self.trainable_variables
        policy_ids = {id(v) for v in self._policy_variables()}
        return [v for v in self.trainable_variables if id(v) not in policy_ids]

    def _build_policy_optimizer(self):
        if self.policy_optimizer is not None and not self.policy_optimizer.built:
            self.policy_optimizer.build(self._policy_variables())

    def _apply_gradients(self, gradients, variables):
        if self.policy_optimizer is None:
            self.optimizer.apply(gradients, variables)
            return
        policy_ids = {id(v) for v in self._policy_variables()}
        pairs = list(zip(gradients, variables))
        network = [(g, v) for g, v in pairs if id(v) not in policy_ids]
        policy = [(g, v) for g, v in pairs if id(v) in policy_ids]
        if network:
            self.optimizer.apply(*zip(*network))
        if policy:
            self.policy_optimizer.apply(*zip(*policy))

    @property
    def gated_layers(self):
        """The gated layers of `network`, in order."""
        return list(self._gated_layers)

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)
        if self.baseline_head is not None and not self.baseline_head.built:
            shape = input_shape
            if isinstance(shape, dict):
                shape = next(iter(shape.values()))
            while isinstance(shape, (list, tuple)) and shape and isinstance(
                shape[0], (list, tuple)
            ):
                shape = shape[0]  # several inputs: the head reads the first
            self.baseline_head.build((None, int(np.prod([int(d) for d in shape[1:]]))))
        self.built = True

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def baseline(self):
        """The bias-corrected moving average of the cost (0 before training)."""
        corrected = self.baseline_ema / (
            1.0 - ops.power(self.baseline_decay, ops.maximum(self.baseline_updates, 1.0))
        )
        return ops.where(self.baseline_updates > 0, corrected, 0.0)

    def _example_costs(self, y, y_pred):
        # Resolved at trace time, so it also works after `load_model` recompiles.
        self._per_example_loss = self.cost or per_example_loss_fn(self.loss)
        if self._per_example_loss is None:
            raise ValueError(
                "CondCompModel needs a loss to derive each example's cost: call "
                "`compile(loss=...)` or pass `cost=` to CondCompModel."
            )
        costs = self._per_example_loss(y, y_pred)
        if len(getattr(costs, "shape", ())) == 0:
            source = "cost" if self.cost else "loss"
            raise ValueError(
                f"CondCompModel needs one cost per example, but `{source}(y_true, y_pred)` "
                "returned a scalar (a reduced loss?). Pass a function returning shape "
                f"(batch,), e.g. an unreduced loss. Received: {source}="
                f"{self.cost if self.cost else self.loss!r}"
            )
        return ops.stop_gradient(_reduce_to_batch(costs))

    def _gate_outputs(self):
        """The `GateOutputs` of every gated layer from the last forward pass.

        Call right after the forward pass, before any cross-replica op: under
        MirroredStrategy the replicas run `train_step` in threads sharing the
        layer objects, and at each collective (merge call) another replica's
        forward pass may overwrite `layer.gate_outputs`. (Keras' own layer
        losses rely on the same ordering.)
        """
        return [layer.gate_outputs for layer in self._gated_layers]

    def _policy_terms(self, x, y, y_pred, sample_weight, gates=None, training=True):
        """REINFORCE terms of a batch.

        Returns `(surrogate, mean_cost, baseline, baseline_fit_loss)`:
        the surrogate whose gradient is the REINFORCE estimate, the global
        mean cost, the mean baseline used and the least-squares loss of the
        learned baseline head (0 for the other baselines).
        """
        gates = self._gate_outputs() if gates is None else gates
        costs = self._example_costs(y, y_pred)
        log_prob = ops.sum(
            ops.stack([ops.cast(g.log_prob, "float32") for g in gates]),
            axis=0,
        )
        # Mean cost over the global batch: all-reduced across replicas under
        # tf.distribute, so every replica uses and stores the same baseline.
        mean_cost = global_mean(costs)
        # Before any update the EMA baseline is this batch's mean cost.
        ema = ops.where(self.baseline_updates > 0, self.baseline(), mean_cost)
        baseline, fit_loss = self._baseline(self, x, costs, ema, training)
        if self.estimator == "reinforce":
            surrogate = reinforce_surrogate(costs, baseline, log_prob, sample_weight)
        else:  # the policies learn by backprop through the masks
            surrogate = ops.zeros((), "float32")
        self._track_policy_grad_variance(costs - baseline, gates)
        return surrogate, mean_cost, ops.mean(baseline), fit_loss

    def _track_policy_grad_variance(self, advantage, gates):
        """Logs `policy_grad_var`: variance over examples of the REINFORCE gradient.

        Per example the REINFORCE gradient with respect to a policy's logits
        is `(cost - b) * (u - sigma)`; its variance over the batch, averaged
        over blocks and gated layers, is what a better baseline lowers.
        """
        advantage = ops.expand_dims(ops.stop_gradient(ops.cast(advantage, "float32")), -1)
        variances = [
            ops.mean(ops.var(advantage * (ops.cast(g.mask, "float32")
                                          - ops.cast(g.sigma, "float32")), axis=0))
            for g in gates
        ]
        self.grad_var_tracker.update_state(ops.mean(ops.stack(variances)))

    def _update_baseline(self, mean_cost):
        decay = self.baseline_decay
        self.baseline_ema.assign(decay * self.baseline_ema + (1.0 - decay) * mean_cost)
        self.baseline_updates.assign_add(1.0)

    def _cross_replica_regularization(self, gates=None):
        """Turns the gate regularizers into functions of the global batch.

        L_b and L_v are nonlinear in batch statistics of sigma (per-block mean
        and variance over examples), so under tf.distribute each replica's
        layer loss would regularize its own shard, not the global batch. Keras
        already adds each replica's `R(sigma_local) / num_replicas` (the layer
        losses); this returns the correction that replaces it by a term of
        value `R(sigma_global) / num_replicas` whose gradient is this
        replica's examples' share of the gradient of `R(sigma_global)`, so the
        gradients summed over replicas equal single-device training on the
        global batch. No gradient goes through a collective op (see
        `keras_condcomp.replicas.global_batch_view`). Returns None outside multi-replica training.
        """
        context = sync_replica_context()
        if context is None:
            return None
        gates = self._gate_outputs() if gates is None else gates
        num_replicas = float(context.num_replicas_in_sync)
        corrections = []
        for layer, gate in zip(self._gated_layers, gates):
            sigma = ops.cast(gate.sigma, "float32")
            global_term = layer._regularization(global_batch_view(sigma, context))
            corrections.append(
                ops.stop_gradient(global_term) / num_replicas
                + (global_term - ops.stop_gradient(global_term))
                - layer._regularization(sigma) / num_replicas
            )
        return ops.sum(ops.stack(corrections))

    def _update_gate_metrics(self, surrogate, baseline, mean_cost, gates=None):
        self.policy_loss_tracker.update_state(surrogate)
        self.task_loss_tracker.update_state(mean_cost)
        self.baseline_tracker.update_state(baseline)
        outputs = self._gate_outputs() if gates is None else gates
        self.gate_loss_tracker.update_state(
            ops.sum(ops.stack([ops.cast(g.regularization, "float32") for g in outputs]))
        )
        self.flop_fraction_tracker.update_state(gated_flop_fraction(outputs))
        for tracker, out in zip(self.active_trackers, outputs):
            # A NaN/Inf sigma switches blocks off silently (`noise < nan` is
            # False); report the active fraction as NaN instead so that
            # `keras_condcomp.callbacks.TerminateOnNonFinite` can name it.
            sigma_finite = ops.all(ops.isfinite(out.sigma))
            active = ops.mean(ops.cast(out.mask, "float32"))
            tracker.update_state(ops.where(sigma_finite, active, float("nan")))

    def _track_loss(self, x, loss):
        batch = ops.shape(next(i for i in keras.tree.flatten(x) if i is not None))[0]
        self._loss_tracker.update_state(
            replicas_total(loss), sample_weight=batch
        )

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds the model, the metrics and `optimizer` here before the
        # first step (every backend but TensorFlow without a strategy, which
        # builds them in the first step). Keras would build `optimizer` on
        # every trainable variable; with a policy optimizer it updates only
        # the network's (`_apply_gradients`), so it is built on those, as
        # `compile_from_config` does when a saved model is loaded.
        optimizer = self.optimizer
        network_only = (
            self.policy_optimizer is not None and optimizer is not None and not optimizer.built
        )
        if network_only:
            self.optimizer = None
        try:
            super()._symbolic_build(iterator=iterator, data_batch=data_batch)
        finally:
            self.optimizer = optimizer
        if network_only:
            optimizer.build(self._network_variables())
        self._build_policy_optimizer()

    def _repeat_batch(self, x, y, sample_weight):
        """`num_samples` copies of the batch along axis 0 (one mask sample each)."""
        if self.num_samples == 1:
            return x, y, sample_weight

        def repeat(t):
            return None if t is None else ops.concatenate([t] * self.num_samples, axis=0)

        return tuple(keras.tree.map_structure(repeat, v) if v is not None else None
                     for v in (x, y, sample_weight))

    def _forward(self, x, y, sample_weight, training):
        """Forward pass, total loss and REINFORCE terms shared by train and test steps."""
        y_pred = self(x, training=training)
        gates = self._gate_outputs()  # before any cross-replica op
        # In training compute_loss adds self.losses (the gate regularizers)
        # once; in evaluation the layers add none (`val_loss` is the task's).
        loss = self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        correction = self._cross_replica_regularization(gates) if training else None
        if correction is not None:
            loss = loss + correction
        self._track_loss(x, loss)
        surrogate, mean_cost, baseline, fit_loss = self._policy_terms(
            x, y, y_pred, sample_weight, gates, training=training
        )
        self._update_gate_metrics(surrogate, baseline, mean_cost, gates)
        return y_pred, loss, surrogate, mean_cost, fit_loss

    def _training_loss(self, x, y, sample_weight):
        """One training forward pass: `(y_pred, loss to differentiate, mean cost)`.

        The loss is the compiled loss plus the gate regularizers (and the
        distillation term), the REINFORCE surrogate and the learned
        baseline's fit, scaled as the optimizer asks (loss scaling); the
        backend's `train_step` (`keras_condcomp.trainers`) differentiates it,
        applies the gradients (`_apply_gradients`), then updates the
        baseline with the mean cost (`_update_baseline`).
        """
        y_pred, loss, surrogate, mean_cost, fit_loss = self._forward(
            x, y, sample_weight, training=True
        )
        total = loss + replica_share(
            self.policy_weight * surrogate + fit_loss
        )
        return y_pred, self.optimizer.scale_loss(total), mean_cost

    def _all_seed_generators(self):
        """Every `keras.random.SeedGenerator` of the model, in a fixed order."""
        generators, seen = [], set()
        for layer in self._flatten_layers(include_self=True, recursive=True):
            for generator in getattr(layer, "_seed_generators", []):
                if id(generator) not in seen:
                    seen.add(id(generator))
                    generators.append(generator)
        return generators

    def save_own_variables(self, store):
        """Saves the baseline and the states of the sampling seed generators.

        Keras saves neither `SeedGenerator` states nor anything else outside
        layer weights, so without this a restored model would sample different
        gates from an uninterrupted one.
        """
        super().save_own_variables(store)
        for i, generator in enumerate(self._all_seed_generators()):
            store[SEED_STATE_KEY.format(i)] = generator.state

    def load_own_variables(self, store):
        prefix = SEED_STATE_KEY.format("")
        keys = list(store.keys())
        seed_keys = [k for k in keys if k.startswith(prefix)]
        super().load_own_variables({k: store[k] for k in keys if not k.startswith(prefix)})
        generators = self._all_seed_generators()
        if not seed_keys:
            if generators:
                warnings.warn(
                    f"The weights loaded into {self.name!r} hold no seed generator "
                    "state (saved by an older keras_condcomp); gate sampling "
                    "continues from the seeds this model was built with.",
                    stacklevel=2,
                )
            return
        if len(seed_keys) != len(generators):
            raise ValueError(
                f"Model {self.name!r} has {len(generators)} seed generators but the "
                f"weights file holds {len(seed_keys)} seed generator states; it was "
                "saved from a different architecture. "
                f"Received: keys={sorted(seed_keys)}"
            )
        for i, generator in enumerate(generators):
            generator.state.assign(store[SEED_STATE_KEY.format(i)])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "baseline_decay": self.baseline_decay,
                "policy_weight": self.policy_weight,
                "cost": keras.saving.serialize_keras_object(self.cost),
                "baseline": self.baseline_kind,
                "num_samples": self.num_samples,
                "estimator": self.estimator,
                "gumbel_temperature": self.gumbel_temperature,
                "distillation_weight": self.distillation_weight,
                "temperature": self.temperature,
                "distillation_from_logits": self.distillation_from_logits,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        # Saved before the `estimator` option, when REINFORCE was the only one.
        config.setdefault("estimator", "reinforce")
        config["network"] = keras.saving.deserialize_keras_object(
            config["network"], custom_objects=custom_objects
        )
        config["cost"] = keras.saving.deserialize_keras_object(
            config.get("cost"), custom_objects=custom_objects
        )
        return cls(**config)
