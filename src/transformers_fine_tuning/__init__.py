"""Stable fine-tuning of pretrained encoders with the Hugging Face Trainer.

AdamW with L2-SP, layer-wise learning-rate decay, re-initialisation, freezing and Mixout, each one argument
away, and a Trainer that builds its optimizer after the model is on its device (CPU, CUDA, TPU).
"""

from .adapters import apply_lora
from .architectures import (
    LAYER_MAPS,
    LayerMap,
    ModelLayout,
    discover_layer_map,
    model_layout,
    register_layer_map,
)
from .callbacks import (
    FineTuningCallback,
    FineTuningPlan,
    FreezeCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    ReinitCallback,
)
from .diagnostics import (
    DiagnosticCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
    grad_norms_by_depth,
    prior_loss,
)
from .optim import AdamWL2SP, param_groups
from .surgery import MixoutLinear, apply_mixout, freeze_bottom_layers, reinit_top_layers
from .transformers import TrainerOptimizerInit

__version__ = "0.1.0"

__all__ = [
    "LAYER_MAPS",
    "AdamWL2SP",
    "DiagnosticCallback",
    "EarlyFailureCallback",
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "GradNormCallback",
    "L2SPCallback",
    "LLRDCallback",
    "LayerMap",
    "LossSpikeCallback",
    "MixoutCallback",
    "MixoutLinear",
    "ModelLayout",
    "NonFiniteGuardCallback",
    "ReinitCallback",
    "TrainerOptimizerInit",
    "apply_lora",
    "apply_mixout",
    "discover_layer_map",
    "freeze_bottom_layers",
    "grad_norms_by_depth",
    "model_layout",
    "param_groups",
    "prior_loss",
    "register_layer_map",
    "reinit_top_layers",
]
