"""Seeds trained together: N seeds of one recipe as one batched computation, each with its own results.

:mod:`.group` batches the training forward and backward (``torch.func``: ``stack_module_state``, ``vmap``,
``functional_call``); :mod:`.job` runs each seed's own fine-tune job around it (``tft-fine-tune-seeds``).
"""

from .group import GroupAborted, SeedGroup
from .job import BATCHABLE_CALLBACKS, REFUSED_EXIT_STATUS, Unbatchable, run_seeds, seed_argvs, unbatchable

__all__ = [
    "BATCHABLE_CALLBACKS",
    "REFUSED_EXIT_STATUS",
    "GroupAborted",
    "SeedGroup",
    "Unbatchable",
    "run_seeds",
    "seed_argvs",
    "unbatchable",
]
