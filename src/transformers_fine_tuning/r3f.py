"""The old path of :mod:`transformers_fine_tuning.techniques.r3f`, deprecated in 0.2.0 and to be removed in 0.3.0:
importing it warns and gives that very module."""

import sys

from .deprecation import warn_moved
from .techniques import r3f

warn_moved("transformers_fine_tuning.r3f", "transformers_fine_tuning.techniques.r3f")
sys.modules[__name__] = r3f
