"""The old path of the weight-space averages (EMA, SWA, WiSE-FT), deprecated in 0.2.0 and to be removed in
0.3.0 (importing it warns): the same names, now in transformers_fine_tuning.techniques."""

from .deprecation import warn_moved
from .techniques.ema import ema_decay_from_half_life, ema_weight
from .techniques.swa import swa_weight
from .techniques.weight_averaging import WeightAverage
from .techniques.wise_ft import choose_wise_ft_alpha, wise_ft_interpolate

__all__ = [
    "WeightAverage",
    "choose_wise_ft_alpha",
    "ema_decay_from_half_life",
    "ema_weight",
    "swa_weight",
    "wise_ft_interpolate",
]

warn_moved("transformers_fine_tuning.averaging", "transformers_fine_tuning.techniques")
