import numpy as np
import pytest

from keras_condcomp import regularizers


def _np_block_balance(sigma, tau):
    return np.sum(np.abs(sigma.mean(axis=0) - tau))


def _np_example_balance(sigma, tau):
    return np.mean(np.abs(sigma.mean(axis=1) - tau))


def _np_variance(sigma):
    return 0.25 * sigma.shape[1] - np.sum(sigma.var(axis=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.1, 0.25, 1.0])
def test_regularizers_match_numpy(seed, tau):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(size=(17, 6)).astype("float32")
    np.testing.assert_allclose(
        regularizers.block_balance_loss(sigma, tau), _np_block_balance(sigma, tau), rtol=1e-5
    )
    np.testing.assert_allclose(
        regularizers.example_balance_loss(sigma, tau), _np_example_balance(sigma, tau), rtol=1e-5
    )
    np.testing.assert_allclose(regularizers.variance_loss(sigma), _np_variance(sigma), rtol=1e-5)


def test_regularizers_zero_at_target():
    sigma = np.full((4, 8), 0.25, "float32")
    assert float(regularizers.block_balance_loss(sigma, 0.25)) == pytest.approx(0.0, abs=1e-7)
    assert float(regularizers.example_balance_loss(sigma, 0.25)) == pytest.approx(0.0, abs=1e-7)
    # A constant policy gets the largest L_v (no variance: 1/4 per block) ...
    assert float(regularizers.variance_loss(sigma)) == pytest.approx(8 * 0.25, abs=1e-6)
    # ... a bimodal policy with the same mean a strictly lower one, and the
    # most varied policy possible (half the examples all on) exactly 0.
    bimodal = np.zeros((4, 8), "float32")
    bimodal[0] = 1.0
    assert float(regularizers.variance_loss(bimodal)) < 8 * 0.25 - 1.0
    halves = np.zeros((4, 8), "float32")
    halves[:2] = 1.0
    assert float(regularizers.variance_loss(halves)) == pytest.approx(0.0, abs=1e-6)


def test_variance_loss_is_never_negative():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sigma = (rng.uniform(size=(33, 5)) > rng.uniform()).astype("float32")
        assert float(regularizers.variance_loss(sigma)) >= -1e-6
