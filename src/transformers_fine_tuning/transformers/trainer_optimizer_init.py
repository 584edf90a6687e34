"""The former path of :mod:`transformers_fine_tuning.trainer.trainer_optimizer_init`, kept for the public API."""

from ..trainer.trainer_optimizer_init import CALLBACK_STATE_KEY, TrainerOptimizerInit

__all__ = ["CALLBACK_STATE_KEY", "TrainerOptimizerInit"]
