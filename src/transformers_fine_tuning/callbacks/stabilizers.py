"""The old path of the NoisyTune, weight averaging, R3F and WiSE-FT callbacks, deprecated in 0.2.0 and to be
removed in 0.3.0 (importing it warns): the same names, now in transformers_fine_tuning.callbacks."""

from ..deprecation import warn_moved
from ..techniques import (
    EMACallback,
    NoisyTuneCallback,
    R3FCallback,
    SWACallback,
    WeightAveragingCallback,
    WiSEFTCallback,
)

__all__ = [
    "EMACallback",
    "NoisyTuneCallback",
    "R3FCallback",
    "SWACallback",
    "WeightAveragingCallback",
    "WiSEFTCallback",
]

warn_moved("transformers_fine_tuning.callbacks.stabilizers", "transformers_fine_tuning.callbacks")
