"""The stabilising techniques, one module each — its functional form on an ``nn.Module`` or tensors, for any
training loop, and its Trainer callback, as Composer keeps an algorithm — with what they share:

* :mod:`.registry` declares each technique's flags, order, exclusions and reason it cannot act under adapters,
  once, for the argument checks, the callbacks' checks and the builder;
* :mod:`.base` is the contract between a callback and :class:`~transformers_fine_tuning.TrainerOptimizerInit`
  (:class:`FineTuningCallback`, :class:`FineTuningPlan`, :class:`LossTermCallback`);
* :mod:`.checks` holds the checks several techniques make; :mod:`.weight_averaging` and :mod:`.unfreezing` the
  mechanics that EMA and SWA, and LP-FT and gradual unfreezing, share.

The techniques: :mod:`.reinit`, :mod:`.freeze`, :mod:`.mixout`, :mod:`.llrd`, :mod:`.l2sp`, :mod:`.noisytune`,
:mod:`.ema`, :mod:`.swa`, :mod:`.r3f`, :mod:`.wise_ft`, :mod:`.lp_ft`, :mod:`.gradual_unfreezing`. LoRA wraps the
model when it is loaded (:func:`transformers_fine_tuning.apply_lora`, ``adapters.py``); the best held-out
checkpoint is a step of the job (``best.py``).
"""

from .base import FineTuningCallback, FineTuningPlan, LossTermCallback
from .ema import EMACallback, ema_decay_from_half_life, ema_weight
from .freeze import FreezeCallback, freeze_bottom_layers
from .gradual_unfreezing import GradualUnfreezingCallback
from .l2sp import L2SPCallback
from .llrd import LLRDCallback
from .lp_ft import LPFTCallback
from .mixout import MixoutCallback, MixoutLinear, apply_mixout, strip_mixout
from .noisytune import NoisyTuneCallback, apply_noisytune
from .r3f import R3FCallback, r3f_term, symmetric_kl
from .registry import EXCLUSIVE, TECHNIQUES, Technique, order_of, technique
from .reinit import ReinitCallback, reinit_top_layers
from .swa import SWACallback, swa_weight
from .unfreezing import UnfreezingCallback
from .weight_averaging import WeightAverage, WeightAveragingCallback
from .wise_ft import WiSEFTCallback, choose_wise_ft_alpha, wise_ft_interpolate

__all__ = [
    "EXCLUSIVE",
    "TECHNIQUES",
    "EMACallback",
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "GradualUnfreezingCallback",
    "L2SPCallback",
    "LLRDCallback",
    "LPFTCallback",
    "LossTermCallback",
    "MixoutCallback",
    "MixoutLinear",
    "NoisyTuneCallback",
    "R3FCallback",
    "ReinitCallback",
    "SWACallback",
    "Technique",
    "UnfreezingCallback",
    "WeightAverage",
    "WeightAveragingCallback",
    "WiSEFTCallback",
    "apply_mixout",
    "apply_noisytune",
    "choose_wise_ft_alpha",
    "ema_decay_from_half_life",
    "ema_weight",
    "freeze_bottom_layers",
    "order_of",
    "r3f_term",
    "reinit_top_layers",
    "strip_mixout",
    "swa_weight",
    "symmetric_kl",
    "technique",
    "wise_ft_interpolate",
]
