"""Extensions of Hugging Face ``transformers`` classes, and the fine-tuning optimizer they build."""

from .optimizer import build_fine_tuning_optimizer
from .trainer_optimizer_init import TrainerOptimizerInit

__all__ = ["TrainerOptimizerInit", "build_fine_tuning_optimizer"]
