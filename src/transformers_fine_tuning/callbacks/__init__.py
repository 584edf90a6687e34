"""Trainer callbacks for stable fine-tuning, run by :class:`~transformers_fine_tuning.TrainerOptimizerInit`."""

from .base import FineTuningCallback, FineTuningPlan
from .fine_tuning import FreezeCallback, L2SPCallback, LLRDCallback, MixoutCallback, ReinitCallback

__all__ = [
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "L2SPCallback",
    "LLRDCallback",
    "MixoutCallback",
    "ReinitCallback",
]
