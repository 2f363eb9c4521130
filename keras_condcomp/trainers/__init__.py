"""`CondCompModel`'s train and test steps, one module per Keras backend.

Keras 3 trains with a backend's own trainer (`keras/src/backend/<backend>/
trainer.py`): TensorFlow and PyTorch update variables in place and take
gradients with a tape or autograd; JAX's steps are pure functions of the
variables' values. `CondCompModel` computes what it trains in backend-neutral
`keras.ops` (`CondCompModel._training_loss`, `_apply_gradients`,
`_update_baseline`, `_forward`); the mixin imported here, picked by
`keras.backend.backend()` when the package is imported, differentiates and
applies them the backend's way.
"""

import keras

_BACKEND = keras.backend.backend()

if _BACKEND == "tensorflow":
    from keras_condcomp.trainers.tensorflow_trainer import TensorFlowTrainStep as BackendTrainStep
elif _BACKEND == "jax":
    from keras_condcomp.trainers.jax_trainer import JaxTrainStep as BackendTrainStep
elif _BACKEND == "torch":
    from keras_condcomp.trainers.torch_trainer import TorchTrainStep as BackendTrainStep
else:
    raise ImportError(
        "keras_condcomp trains on the Keras backends tensorflow, jax and torch. "
        f"Received: KERAS_BACKEND={_BACKEND!r}"
    )

__all__ = ["BackendTrainStep"]
