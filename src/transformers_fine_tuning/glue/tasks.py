"""The old path of :mod:`transformers_fine_tuning.tasks.glue.table`, kept until 0.3.0: importing it gives that
very module (the same functions and state, so monkeypatching either path patches both)."""

import sys

from ..tasks.glue import table

sys.modules[__name__] = table
