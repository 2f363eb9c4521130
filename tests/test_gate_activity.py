"""What the gates decide on data (keras_condcomp/gate_activity.py)."""

import keras
import numpy as np
import pytest

from keras_condcomp import GatedDense, gate_activations, summary


def _model():
    first = GatedDense(8, num_blocks=4, activation="relu", name="first", top_k=2)
    second = GatedDense(6, num_blocks=2, name="second")
    model = keras.Sequential([keras.Input((5,)), first, second, keras.layers.Dense(3)])
    first.policy.kernel.assign(np.zeros(first.policy.kernel.shape, "float32"))
    first.policy.bias.assign(np.asarray([1.0, 3.0, 2.0, -1.0], "float32"))
    # The second layer's first block on for examples whose first input is > 0.
    kernel = np.zeros(second.policy.kernel.shape, "float32")
    kernel[0, 0] = 0.0
    second.policy.kernel.assign(kernel)
    second.policy.bias.assign(np.asarray([4.0, -4.0], "float32"))
    return model


def test_gate_activations_are_the_inference_masks_in_call_order():
    model = _model()
    x = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    gates = gate_activations(model, x, batch_size=3)  # batches of 3, 3 and 1
    assert list(gates) == ["first", "second"]
    # Top-2 of sigmoid([1, 3, 2, -1]): blocks 1 and 2, for every example.
    np.testing.assert_array_equal(gates["first"]["mask"], [[0, 1, 1, 0]] * 7)
    np.testing.assert_allclose(gates["first"]["sigma"][0],
                               1 / (1 + np.exp(-np.array([1.0, 3.0, 2.0, -1.0]))), rtol=1e-6)
    np.testing.assert_array_equal(gates["second"]["mask"], [[1, 0]] * 7)
    np.testing.assert_allclose(gates["first"]["input_active"], 1.0)
    np.testing.assert_allclose(gates["second"]["input_active"], 0.5)


def test_summary_reports_rules_fractions_and_multiply_adds():
    model = _model()
    x = np.random.default_rng(1).normal(size=(10, 5)).astype("float32")
    lines = []
    text = summary(model, x, print_fn=lines.append)
    assert lines == [text]
    first, second = text.splitlines()[2:4]
    assert first.split()[:7] == ["first", "(dense)", "4", "2", "0.5", "top-2", "0.500"]
    assert "sigma > 0.5" in second and "0.500" in second
    # first: 40 * 0.5 + 20 = 40 of 40; second: 48 * 0.5 * 0.5 + 16 * 0.5 = 20 of 48.
    assert "(1.000)" in first and f"({20 / 48:.3f})" in second
    assert text.splitlines()[-1] == (
        f"gated layers together: {60 / 88:.3f} of the dense multiply-adds over 10 examples")
    assert summary(model, x, print_fn=None) == text


@pytest.mark.parametrize("call, match", [
    (lambda m, x: gate_activations(keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]),
                                   x), "holds no gated layer"),
    (lambda m, x: gate_activations(m, x, batch_size=0), "batch_size"),
    (lambda m, x: summary(m, x, batch_size=-1), "batch_size"),
])
def test_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(_model(), np.zeros((2, 5), "float32"))
