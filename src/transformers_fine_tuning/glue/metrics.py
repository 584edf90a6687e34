"""The old path of :mod:`transformers_fine_tuning.tasks.metrics`, kept until 0.3.0: importing it gives that
very module (the same functions and state, so monkeypatching either path patches both)."""

import sys

from ..tasks import metrics

sys.modules[__name__] = metrics
