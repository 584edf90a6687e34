"""``python -m transformers_fine_tuning.study ...``: the same command as ``scripts/study.py``."""

import sys

from .cli import main

sys.exit(main())
