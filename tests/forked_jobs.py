"""Jobs for the fork server's tests (``study/test_forkserver.py``): ``main(argv)`` as the fine-tune job has it."""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    """``report FILE``: what the child saw, as JSON; ``exit N``: exit status N; ``abort``: a hard crash."""
    if argv[0] == "abort":
        os.abort()
    if argv[0] == "exit":
        return int(argv[1])
    with open(argv[1], "w", encoding="utf-8") as report:
        json.dump(
            {
                "pid": os.getpid(),
                "session": os.getsid(0),
                "preloaded": "transformers" in sys.modules and "torch" in sys.modules,
                "omp": os.environ.get("OMP_NUM_THREADS"),
            },
            report,
        )
    print("report written")
    return 0
