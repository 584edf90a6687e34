"""The Trainer that builds its optimizer after the model is on its device, and the fine-tuning optimizer it (or any
Trainer or loop) builds."""

from .optimizer import build_fine_tuning_optimizer
from .trainer_optimizer_init import TrainerOptimizerInit

__all__ = ["TrainerOptimizerInit", "build_fine_tuning_optimizer"]
