"""``python -m transformers_fine_tuning.batched --seeds 0 1 2 3 ...``: see :mod:`.job`."""

import sys

from .job import main

sys.exit(main())
