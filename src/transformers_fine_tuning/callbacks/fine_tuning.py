"""The old path of the re-initialisation, freezing, Mixout, LLRD and L2-SP callbacks, deprecated in 0.2.0 and
to be removed in 0.3.0 (importing it warns): the same names, now in transformers_fine_tuning.callbacks."""

from ..deprecation import warn_moved
from ..techniques import FreezeCallback, L2SPCallback, LLRDCallback, MixoutCallback, ReinitCallback

__all__ = ["FreezeCallback", "L2SPCallback", "LLRDCallback", "MixoutCallback", "ReinitCallback"]

warn_moved("transformers_fine_tuning.callbacks.fine_tuning", "transformers_fine_tuning.callbacks")
