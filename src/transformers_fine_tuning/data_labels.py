"""The old path of :mod:`transformers_fine_tuning.tasks.labels`, kept for compatibility: importing it gives that
very module."""

import sys

from .tasks import labels

sys.modules[__name__] = labels
