"""Knowledge distillation from a trained teacher, for condnets and for their dense peers.

Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network"
(arXiv:1503.02531): the student also matches the teacher's softened class
distribution, `T^2 KL(softmax(t / T) || softmax(s / T))` per example. The
same term serves a `CondCompModel` (`teacher=`) and a plain Keras network
(`Distiller`), so a condnet and the dense nets it is compared with can get
the same teacher.

The teacher is a training input, not part of the student: it is not saved
with the model, and a loaded model trains without it unless given one again.
"""

import keras
from keras import ops

from keras_condcomp.validation import check_non_negative

# Probabilities are clipped to this before their log (a softmax output of 0).
_EPSILON = 1e-7


def _log_softmax_at_temperature(outputs, temperature, from_logits):
    logits = outputs if from_logits else ops.log(ops.clip(outputs, _EPSILON, 1.0))
    return ops.log_softmax(ops.cast(logits, "float32") / temperature, axis=-1)


def distillation_loss(student_outputs, teacher_outputs, temperature=2.0, from_logits=False):
    """Per-example `T^2 KL(p_teacher^T || p_student^T)`, shape `(batch,)`.

    Args:
        student_outputs: `(batch, classes)` student probabilities (or logits
            with `from_logits=True`).
        teacher_outputs: The teacher's, in the same form.
        temperature: Float > 0; the `T^2` factor keeps the gradient scale
            independent of it.
        from_logits: Whether both outputs are logits rather than
            probabilities. A softmax output's log is its logits up to a
            constant per example, which the temperature softmax ignores.
    """
    log_p_student = _log_softmax_at_temperature(student_outputs, temperature, from_logits)
    log_p_teacher = ops.stop_gradient(
        _log_softmax_at_temperature(teacher_outputs, temperature, from_logits))
    kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    return kl * (temperature * temperature)


class _Untracked:
    """Holds the teacher out of Keras' layer tracking, so it is not saved as a sublayer."""

    __slots__ = ("model",)

    def __init__(self, model):
        self.model = model


def _check_teacher(teacher, distillation_weight, temperature):
    if teacher is not None and not callable(teacher):
        raise ValueError(
            "Argument `teacher` must be a Keras model (or a callable returning its outputs) "
            f"or None. Received: teacher={teacher!r}"
        )
    check_non_negative("distillation_weight", distillation_weight)
    if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
            or not 0.0 < temperature < float("inf")):
        raise ValueError(
            f"Argument `temperature` must be a finite number > 0. Received: "
            f"temperature={temperature!r}"
        )


class DistillationMixin:
    """Adds `distillation_weight * mean(distillation_loss)` to the training loss of a Model.

    The subclass calls `_init_distillation` in `__init__`. Evaluation
    losses (`val_loss`) stay the task's.
    """

    def _init_distillation(self, teacher, distillation_weight, temperature, from_logits):
        """Checks and stores the distillation arguments (the teacher out of tracking)."""
        _check_teacher(teacher, distillation_weight, temperature)
        self._teacher = _Untracked(teacher)
        self.distillation_weight = float(distillation_weight)
        self.temperature = float(temperature)
        self.distillation_from_logits = bool(from_logits)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        teacher = self._teacher.model
        if not training or teacher is None or self.distillation_weight == 0.0:
            return loss
        teacher_pred = teacher(x, training=False)
        term = ops.mean(distillation_loss(y_pred, teacher_pred, self.temperature,
                                          self.distillation_from_logits))
        return loss + ops.cast(self.distillation_weight, loss.dtype) * ops.cast(term, loss.dtype)

    @property
    def teacher(self):
        """The teacher model (not saved with this one), or None."""
        return self._teacher.model


@keras.saving.register_keras_serializable(package="keras_condcomp")
class Distiller(DistillationMixin, keras.Model):
    """Trains a plain Keras network with a teacher's softened outputs as extra targets.

    The dense counterpart of `CondCompModel(teacher=...)`: the training loss
    is the compiled loss plus `distillation_weight` times the mean of
    `distillation_loss(student(x), teacher(x), temperature)`; `evaluate`,
    `predict` and `val_loss` are the student's own.

    Args:
        student: The Keras model to train (its outputs and the teacher's are
            class probabilities, or logits with `from_logits=True`).
        teacher: A trained Keras model on the same inputs, or None.
        distillation_weight: Float >= 0, weight of the distillation term.
        temperature: Float > 0, softmax temperature of the term.
        from_logits: Whether the outputs are logits.
        **kwargs: Keyword arguments of `keras.Model`, such as `name`.

    Call arguments:
        inputs: Inputs of `student`.
        training: Python boolean, passed to `student`.

    Example:

    >>> distiller = Distiller(small_dense, teacher=big_dense, distillation_weight=1.0)
    >>> distiller.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> distiller.fit(x, y, epochs=10)
    >>> small_dense.save("student.keras")   # the student holds the trained weights
    """

    def __init__(self, student, teacher=None, distillation_weight=1.0, temperature=2.0,
                 from_logits=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(student, keras.layers.Layer):
            raise ValueError(
                f"Argument `student` must be a Keras model or layer. Received: student={student!r}"
            )
        self.student = student
        self._init_distillation(teacher, distillation_weight, temperature, from_logits)

    def build(self, input_shape):
        if not self.student.built:
            self.student.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "student": keras.saving.serialize_keras_object(self.student),
            "distillation_weight": self.distillation_weight,
            "temperature": self.temperature,
            "from_logits": self.distillation_from_logits,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["student"] = keras.saving.deserialize_keras_object(
            config["student"], custom_objects=custom_objects)
        return cls(**config)
