"""keras_condcomp: conditional computation for Keras (Bengio et al., 2015).

Gated layers learn per example which blocks of units to compute; a REINFORCE
trained policy decides, and the sparse kernels skip the rest at inference.
"""

from keras_condcomp.budget import calibrate_thresholds, set_top_k
from keras_condcomp.callbacks import GateSummaries, GatingScheduler, linear_schedule
from keras_condcomp.gate import GatingReport, freeze_network, gate
from keras_condcomp.gates import gate_activations, summary
from keras_condcomp.layers import GatedConv2D, GatedDense, GatedLayer, get_block_mask
from keras_condcomp.models import CondCompModel, reinforce_surrogate
from keras_condcomp.policy import BernoulliBlockPolicy

__version__ = "0.1.0"

__all__ = [
    "BernoulliBlockPolicy",
    "CondCompModel",
    "GatedConv2D",
    "GatedDense",
    "GateSummaries",
    "GatedLayer",
    "GatingReport",
    "GatingScheduler",
    "calibrate_thresholds",
    "freeze_network",
    "gate",
    "gate_activations",
    "get_block_mask",
    "linear_schedule",
    "reinforce_surrogate",
    "set_top_k",
    "summary",
]
