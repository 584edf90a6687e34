"""The techniques' Trainer callbacks, run by :class:`~transformers_fine_tuning.TrainerOptimizerInit`, from one place:
each lives in its technique's module of :mod:`transformers_fine_tuning.techniques`, beside its functional form.
This import path is public API and stays; its former submodules (``callbacks.base``, ``callbacks.fine_tuning``,
``callbacks.stabilizers``, ``callbacks.unfreezing``) warn and are removed in 0.3.0."""

from ..techniques import (
    EMACallback,
    FineTuningCallback,
    FineTuningPlan,
    FreezeCallback,
    GradualUnfreezingCallback,
    L2SPCallback,
    LLRDCallback,
    LossTermCallback,
    LPFTCallback,
    MixoutCallback,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    SWACallback,
    UnfreezingCallback,
    WeightAveragingCallback,
    WiSEFTCallback,
)

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
