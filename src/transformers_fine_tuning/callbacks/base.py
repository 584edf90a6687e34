"""The old path of :mod:`transformers_fine_tuning.techniques.base`, deprecated in 0.2.0 and to be removed in 0.3.0:
importing it warns and gives that very module."""

import sys

from ..deprecation import warn_moved
from ..techniques import base

warn_moved("transformers_fine_tuning.callbacks.base", "transformers_fine_tuning.techniques.base")
sys.modules[__name__] = base
