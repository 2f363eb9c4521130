"""keras_condcomp: conditional computation for Keras (Bengio et al., 2015).

Gated layers learn per example which blocks of units to compute; a REINFORCE
trained policy decides, and the sparse kernels skip the rest at inference.
"""

__version__ = "0.1.0"

try:
    import keras as _keras  # noqa: F401
except ImportError as _error:  # a runtime-only install: pip install 'keras_condcomp[runtime]'
    _KERAS_MISSING = _error
else:
    _KERAS_MISSING = None

if _KERAS_MISSING is None:
    # Imported eagerly: importing the layer modules registers the classes that
    # keras.models.load_model needs for "keras_condcomp>GatedDense" etc.
    from keras_condcomp.budget import calibrate_thresholds, set_top_k
    from keras_condcomp.callbacks import GateSummaries, GatingScheduler, linear_schedule
    from keras_condcomp.distillation import Distiller, distillation_loss
    from keras_condcomp.gate import GatingReport, freeze_network, gate
    from keras_condcomp.gate_activity import gate_activations, summary
    from keras_condcomp.layers import GatedConv2D, GatedDense, GatedLayer, get_block_mask
    from keras_condcomp.models import CondCompModel, reinforce_surrogate
    from keras_condcomp.policy import BernoulliBlockPolicy

__all__ = [
    "BernoulliBlockPolicy",
    "CondCompModel",
    "Distiller",
    "GatedConv2D",
    "GatedDense",
    "GateSummaries",
    "GatedLayer",
    "GatingReport",
    "GatingScheduler",
    "calibrate_thresholds",
    "distillation_loss",
    "freeze_network",
    "gate",
    "gate_activations",
    "get_block_mask",
    "linear_schedule",
    "reinforce_surrogate",
    "set_top_k",
    "summary",
]


def __getattr__(name):
    # Only reached without Keras: the layers and training need it, the
    # interpreter (keras_condcomp.litert) does not.
    if name in __all__ and _KERAS_MISSING is not None:
        raise ImportError(
            f"keras_condcomp.{name} needs Keras 3 with TensorFlow ({_KERAS_MISSING}); "
            "install them with `pip install 'keras_condcomp[train]'`. Running converted "
            "models needs only `keras_condcomp.litert` (`pip install 'keras_condcomp[runtime]'`)."
        ) from _KERAS_MISSING
    raise AttributeError(f"module 'keras_condcomp' has no attribute {name!r}")
