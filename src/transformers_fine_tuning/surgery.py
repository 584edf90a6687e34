"""The old path of model surgery (re-initialisation, freezing, Mixout, NoisyTune), deprecated in 0.2.0 and to
be removed in 0.3.0 (importing it warns): the same names, now in transformers_fine_tuning.techniques."""

from .deprecation import warn_moved
from .techniques.freeze import freeze_bottom_layers
from .techniques.mixout import MixoutLinear, apply_mixout, strip_mixout
from .techniques.noisytune import apply_noisytune
from .techniques.reinit import reinit_top_layers

__all__ = [
    "MixoutLinear",
    "apply_mixout",
    "apply_noisytune",
    "freeze_bottom_layers",
    "reinit_top_layers",
    "strip_mixout",
]

warn_moved("transformers_fine_tuning.surgery", "transformers_fine_tuning.techniques")
