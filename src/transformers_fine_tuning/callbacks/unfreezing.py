"""The old path of the unfreezing schedules' callbacks, deprecated in 0.2.0 and to be removed in 0.3.0 (importing it
warns): the same names, now in transformers_fine_tuning.callbacks."""

from ..deprecation import warn_moved
from ..techniques import GradualUnfreezingCallback, LPFTCallback, UnfreezingCallback

__all__ = ["GradualUnfreezingCallback", "LPFTCallback", "UnfreezingCallback"]

warn_moved("transformers_fine_tuning.callbacks.unfreezing", "transformers_fine_tuning.callbacks")
