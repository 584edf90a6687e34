#!/usr/bin/env python
"""Seed studies from the command line: run a grid of tasks × recipes × seeds, then the table and the plots.

    python scripts/study.py run study.yaml                     # run, or resume after a crash
    python scripts/study.py run study.yaml --backend local --workers 4
    python scripts/study.py run study.yaml --backend ray --address auto
    python scripts/study.py status study.yaml                  # while it runs, from another terminal
    python scripts/study.py summary study.yaml                 # summary.md and summary.csv
    python scripts/study.py plot study.yaml                    # plots/<task>-final.png, -curves.png

``python scripts/study.py --help`` and ``python scripts/study.py run --help`` list every option; the code is
``transformers_fine_tuning.study``.
"""

import sys

from transformers_fine_tuning.study.cli import main

if __name__ == "__main__":
    sys.exit(main())
