"""The old path of :mod:`transformers_fine_tuning.tasks.labels`, deprecated in 0.2.0 and to be removed in 0.3.0:
importing it warns and gives that very module."""

import sys
import warnings

from .tasks import labels

warnings.warn(
    "transformers_fine_tuning.data_labels is deprecated and will be removed in 0.3.0: import "
    "transformers_fine_tuning.tasks.labels instead",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = labels
