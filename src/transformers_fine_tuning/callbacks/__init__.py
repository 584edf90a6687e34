"""Trainer callbacks for stable fine-tuning, run by :class:`~transformers_fine_tuning.TrainerOptimizerInit`."""

from .base import FineTuningCallback, FineTuningPlan, LossTermCallback
from .fine_tuning import FreezeCallback, L2SPCallback, LLRDCallback, MixoutCallback, ReinitCallback
from .stabilizers import (
    EMACallback,
    NoisyTuneCallback,
    R3FCallback,
    SWACallback,
    WeightAveragingCallback,
    WiSEFTCallback,
)
from .unfreezing import GradualUnfreezingCallback, LPFTCallback, UnfreezingCallback

__all__ = [
    "EMACallback",
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "GradualUnfreezingCallback",
    "L2SPCallback",
    "LLRDCallback",
    "LPFTCallback",
    "LossTermCallback",
    "MixoutCallback",
    "NoisyTuneCallback",
    "R3FCallback",
    "ReinitCallback",
    "SWACallback",
    "UnfreezingCallback",
    "WeightAveragingCallback",
    "WiSEFTCallback",
]
