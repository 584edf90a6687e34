"""The stabilising techniques: their registry (:mod:`.registry`), the one place that declares each technique's
flags, order and conflicts."""

from .registry import EXCLUSIVE, TECHNIQUES, Technique, order_of, technique

__all__ = ["EXCLUSIVE", "TECHNIQUES", "Technique", "order_of", "technique"]
