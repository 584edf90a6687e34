"""Optimizers and the parameter groups they are built from."""

from .adamwl2sp import AdamWL2SP
from .param_groups import param_groups

__all__ = ["AdamWL2SP", "param_groups"]
