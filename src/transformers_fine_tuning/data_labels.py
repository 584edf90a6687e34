"""The old path of :mod:`transformers_fine_tuning.tasks.labels`, deprecated in 0.2.0 and to be removed in 0.3.0:
importing it warns and gives that very module."""

import sys

from .deprecation import warn_moved
from .tasks import labels

warn_moved("transformers_fine_tuning.data_labels", "transformers_fine_tuning.tasks.labels")
sys.modules[__name__] = labels
