#!/usr/bin/env python
"""Fine-tune a pretrained encoder on a GLUE task and write ``results.json``: the checkout's entry point.

The job is ``transformers_fine_tuning.fine_tune`` (installed as the ``tft-fine-tune`` command); this file keeps
``python fine-tune.py ...``, ``torchrun ... fine-tune.py ...`` and ``python xla_spawn.py fine-tune.py ...``
(which imports this file and calls ``_mp_fn``) working. ``python fine-tune.py --help`` lists every flag.
"""

import sys

from transformers_fine_tuning.fine_tune import _mp_fn, main, parse_fine_tune_args, prepare, run

__all__ = ["_mp_fn", "main", "parse_fine_tune_args", "prepare", "run"]

if __name__ == "__main__":
    sys.exit(main())
