"""`CondCompModel`'s steps on the JAX backend: pure functions of the variables' values.

Keras' JAX trainer (`keras/src/backend/jax/trainer.py`) jit-compiles
`train_step(state, data) -> (logs, state)`, where `state` holds the values of
the trainable, non-trainable (baseline, seed generator states), optimizer and
metric variables. `CondCompModel`'s training code is written as stateful
`keras.ops` (it assigns the baseline, advances seed generators, updates
metrics, applies one or two optimizers); here it runs inside
`keras.StatelessScope`s mapping every variable to its value in `state`, and
the values it assigned are read back out of the scope, as Keras' own JAX
trainer does for `compute_loss` and `Optimizer.stateless_apply`.

The policy optimizer (`compile(policy_optimizer=...)`) has variables Keras'
trainer does not carry: they ride at the end of the optimizer part of the
state. That needs the trainer's `_get_jax_state` and `jax_state_sync`
(private; tested with Keras 3.15 by tests/test_backends.py).
"""

import jax
import keras


def _scope_values(scope, variables, values):
    """The values `variables` hold at the end of `scope` (`values` where untouched)."""
    out = []
    for variable, value in zip(variables, values):
        current = scope.get_current_value(variable)
        out.append(value if current is None else current)
    return out


class JaxTrainStep:
    """Train and test steps of `CondCompModel` for `keras/src/backend/jax/trainer.py`."""

    def _state_mapping(self, trainable, non_trainable, metrics, optimizer_values=()):
        """`(variable, value)` pairs of the model's variables and the state's values."""
        return (
            list(zip(self.trainable_variables, trainable))
            + list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.metrics_variables, metrics))
            + list(zip(self._all_optimizer_variables(), optimizer_values))
        )

    def _all_optimizer_variables(self):
        variables = list(self.optimizer.variables)
        if self.policy_optimizer is not None:
            variables += list(self.policy_optimizer.variables)
        return variables

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics = state
        x, y, sample_weight = self._repeat_batch(*keras.utils.unpack_x_y_sample_weight(data))

        def loss_fn(trainable_values):
            mapping = self._state_mapping(trainable_values, non_trainable, metrics,
                                          optimizer_values)
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                y_pred, loss, mean_cost = self._training_loss(x, y, sample_weight)
            return loss, (
                y_pred,
                mean_cost,
                _scope_values(scope, self.non_trainable_variables, non_trainable),
                _scope_values(scope, self.metrics_variables, metrics),
            )

        (_, (y_pred, mean_cost, non_trainable, metrics)), gradients = jax.value_and_grad(
            loss_fn, has_aux=True
        )(trainable)

        mapping = self._state_mapping(trainable, non_trainable, metrics, optimizer_values)
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self._apply_gradients(gradients, self.trainable_variables)
            self._update_baseline(mean_cost)
            logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        state = (
            _scope_values(scope, self.trainable_variables, trainable),
            _scope_values(scope, self.non_trainable_variables, non_trainable),
            _scope_values(scope, self._all_optimizer_variables(), optimizer_values),
            _scope_values(scope, self.metrics_variables, metrics),
        )
        return logs, state

    def test_step(self, state, data):
        trainable, non_trainable, metrics = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        mapping = self._state_mapping(trainable, non_trainable, metrics)
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            y_pred = self._forward(x, y, sample_weight, training=False)[0]
            logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        state = (
            trainable,
            _scope_values(scope, self.non_trainable_variables, non_trainable),
            _scope_values(scope, self.metrics_variables, metrics),
        )
        return logs, state

    def _get_jax_state(self, trainable_variables=False, non_trainable_variables=False,
                       optimizer_variables=False, metrics_variables=False,
                       purge_model_variables=False):
        state = super()._get_jax_state(
            trainable_variables=trainable_variables,
            non_trainable_variables=non_trainable_variables,
            optimizer_variables=optimizer_variables,
            metrics_variables=metrics_variables,
            purge_model_variables=purge_model_variables,
        )
        if not optimizer_variables or self.policy_optimizer is None:
            return state
        # The optimizer part is the third entry after the parts asked for before it.
        index = int(trainable_variables) + int(non_trainable_variables)
        state = list(state)
        state[index] = list(state[index]) + [v.value for v in self.policy_optimizer.variables]
        return tuple(state)

    def jax_state_sync(self):
        jax_state = getattr(self, "_jax_state", None)
        if jax_state and not self._jax_state_synced and self.policy_optimizer is not None:
            values = jax_state.get("optimizer_variables") or []
            policy_values = values[len(self.optimizer.variables):]
            for variable, value in zip(self.policy_optimizer.variables, policy_values):
                variable.assign(value)
        super().jax_state_sync()
