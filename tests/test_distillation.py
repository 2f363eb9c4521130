"""Distillation from a teacher: the loss term, `Distiller` and
`CondCompModel(teacher=..., estimator="reinforce")`."""

import keras
import numpy as np
import pytest
from model_helpers import dense_mlp

from keras_condcomp import CondCompModel, Distiller, GatedDense, distillation_loss


def to_numpy(tensor):
    """A tensor of any Keras backend as a NumPy array (torch tensors may require grad)."""
    return keras.ops.convert_to_numpy(tensor)


def test_distillation_loss_is_the_temperature_kl():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    temperature = 3.0
    p_t, p_s = softmax(t / temperature), softmax(s / temperature)
    expected = temperature ** 2 * np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1)
    got = to_numpy(distillation_loss(s, t, temperature, from_logits=True))
    np.testing.assert_allclose(got, expected, rtol=5e-5)  # float32 against float64
    # Probabilities give the same (log p is the logits up to a constant per row).
    got = to_numpy(distillation_loss(softmax(s), softmax(t), temperature))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(distillation_loss(s, s, 2.0, from_logits=True)), 0.0,
                               atol=1e-6)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")


def test_distiller_training_loss_adds_the_weighted_term_and_evaluation_does_not(tmp_path):
    x, y = _data()
    teacher = dense_mlp(8, [16], num_classes=4)
    student = dense_mlp(8, [4], num_classes=4)
    distiller = Distiller(student, teacher=teacher, distillation_weight=0.5, temperature=2.0)
    distiller.compile("sgd", "sparse_categorical_crossentropy")
    y_pred = student(x)
    task = float(np.mean(to_numpy(keras.losses.sparse_categorical_crossentropy(y, y_pred))))
    kd = float(np.mean(to_numpy(distillation_loss(y_pred, teacher(x), 2.0))))
    loss = distiller.compute_loss(x, y, y_pred, training=True)
    assert float(loss) == pytest.approx(task + 0.5 * kd, rel=1e-5)
    assert float(distiller.compute_loss(x, y, y_pred, training=False)) == pytest.approx(task)
    history = distiller.fit(x, y, validation_data=(x, y), epochs=1, verbose=0).history
    assert history["val_loss"][0] == pytest.approx(
        float(np.mean(to_numpy(keras.losses.sparse_categorical_crossentropy(y, student(x))))),
        rel=1e-4)
    # The teacher is not part of what is saved.
    distiller.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    assert loaded.teacher is None and loaded.temperature == 2.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0),
                               rtol=1e-6)
    assert len(loaded.weights) == len(student.weights)


def test_condcomp_model_with_a_teacher_learns_from_it():
    x, y = _data()
    teacher = dense_mlp(8, [32], num_classes=4)
    teacher.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=30, verbose=0)
    network = keras.Sequential([keras.Input((8,)), GatedDense(16, num_blocks=4, top_k=2,
                                                                activation="relu"),
                                keras.layers.Dense(4, activation="softmax")])
    model = CondCompModel(network, estimator="straight_through", teacher=teacher,
                          distillation_weight=2.0, temperature=4.0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before = float(np.mean(to_numpy(
        distillation_loss(model.predict(x, verbose=0), teacher(x), 4.0))))
    model.fit(x, y, epochs=20, verbose=0)
    after = float(np.mean(to_numpy(
        distillation_loss(model.predict(x, verbose=0), teacher(x), 4.0))))
    assert after < 0.5 * before
    config = model.get_config()
    assert config["temperature"] == 4.0 and "teacher" not in config
    assert model.teacher is teacher


@pytest.mark.parametrize("kwargs, match", [
    ({"teacher": 3}, "Argument `teacher`"),
    ({"distillation_weight": -1.0}, "distillation_weight"),
    ({"temperature": 0.0}, "temperature"),
])
def test_distillation_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Distiller(dense_mlp(8, [4]), **kwargs)
