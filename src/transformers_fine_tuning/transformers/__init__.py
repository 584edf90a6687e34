"""The Trainer's former import path, kept for good as part of the public API (not deprecated):
``transformers_fine_tuning.transformers`` and ``transformers_fine_tuning.transformers.trainer_optimizer_init``
give what :mod:`transformers_fine_tuning.trainer` holds (the package was renamed so that it no longer shadows the
``transformers`` library's name)."""

from ..trainer import TrainerOptimizerInit, build_fine_tuning_optimizer

__all__ = ["TrainerOptimizerInit", "build_fine_tuning_optimizer"]
