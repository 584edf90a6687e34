"""Extensions of Hugging Face ``transformers`` classes."""

from .trainer_optimizer_init import TrainerOptimizerInit

__all__ = ["TrainerOptimizerInit"]
