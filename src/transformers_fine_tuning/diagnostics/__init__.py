"""Instability diagnostics: see a fine-tuning run going wrong while it happens."""

from .base import DiagnosticCallback
from .dev_failure import DevFailureCallback
from .early_failure import EarlyFailureCallback, prior_loss
from .grad_norms import GradNormCallback, grad_norms_by_depth
from .loss_spikes import LossSpikeCallback, LossSpikeDetector
from .non_finite import NonFiniteGuardCallback

__all__ = [
    "DevFailureCallback",
    "DiagnosticCallback",
    "EarlyFailureCallback",
    "GradNormCallback",
    "LossSpikeCallback",
    "LossSpikeDetector",
    "NonFiniteGuardCallback",
    "grad_norms_by_depth",
    "prior_loss",
]
