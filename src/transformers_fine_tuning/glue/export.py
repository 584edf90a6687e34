"""The old path of :mod:`transformers_fine_tuning.tasks.glue.export`, kept until 0.3.0: importing it gives
that very module, and ``python -m transformers_fine_tuning.glue.export`` runs its command line."""

import sys

from ..tasks.glue import export

if __name__ == "__main__":
    sys.exit(export.main())
sys.modules[__name__] = export
