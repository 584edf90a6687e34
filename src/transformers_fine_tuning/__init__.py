"""Stable fine-tuning of pretrained encoders with the Hugging Face Trainer.

AdamW with L2-SP, layer-wise learning-rate decay, re-initialisation, freezing, Mixout and LoRA, each one argument
away, a Trainer that builds its optimizer after the model is on its device (CPU, CUDA, TPU), and seed studies
that show the distribution of runs.

The package, in the direction the data flows (a module never reaches back up)::

    arguments.py      flags or a config file → the run's arguments (HfArgumentParser), a recipe's values under them
    recipes/          the papers' recipes, as YAML
    glue/             the task table; loading (GLUE layout, files, Hub), tokenisation, metrics; the layout written
    hub.py            whether the Hub can be reached, known in seconds
    modeling.py       the pretrained model and tokenizer, with a new head for the task
    architectures.py  where each encoder's layer stack, pooler and head live: the table, and discovery
    adapters.py       LoRA adapters (PEFT)
    surgery.py        re-initialisation, freezing, Mixout: functions on an nn.Module
    optim/            AdamWL2SP, and the parameter groups (decay, pretrained or novel, depth)
    callbacks/        the techniques as Trainer callbacks: check against the plan, surgery, group shaping
    diagnostics/      gradient norms, loss spikes, the non-finite guard, the early-failure and dev-failure tests
    seeds.py          one seed per source of randomness: head, data order, dropout, training subset
    transformers/     TrainerOptimizerInit, and build_fine_tuning_optimizer that it (or any loop) calls
    evaluation.py     the predictions of each evaluation, kept for the results
    resume.py         resuming from the last complete checkpoint of the same arguments
    results.py        the results.json schema: its one writer and one reader (atomic.py: files written whole)
    fine_tune.py      the job: parse → prepare → run → results.json (tft-fine-tune)
    study/            seed studies: spec → store → backends → statistics → report and plots (tft-study)
"""

from .adapters import apply_lora
from .architectures import (
    LAYER_MAPS,
    LayerMap,
    ModelLayout,
    discover_layer_map,
    model_layout,
    register_layer_map,
)
from .callbacks import (
    FineTuningCallback,
    FineTuningPlan,
    FreezeCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    ReinitCallback,
)
from .diagnostics import (
    DevFailureCallback,
    DiagnosticCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
    grad_norms_by_depth,
    prior_loss,
)
from .optim import AdamWL2SP, param_groups
from .surgery import MixoutLinear, apply_mixout, freeze_bottom_layers, reinit_top_layers
from .transformers import TrainerOptimizerInit, build_fine_tuning_optimizer

__version__ = "0.1.0"

__all__ = [
    "LAYER_MAPS",
    "AdamWL2SP",
    "DevFailureCallback",
    "DiagnosticCallback",
    "EarlyFailureCallback",
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "GradNormCallback",
    "L2SPCallback",
    "LLRDCallback",
    "LayerMap",
    "LossSpikeCallback",
    "MixoutCallback",
    "MixoutLinear",
    "ModelLayout",
    "NonFiniteGuardCallback",
    "ReinitCallback",
    "TrainerOptimizerInit",
    "apply_lora",
    "apply_mixout",
    "build_fine_tuning_optimizer",
    "discover_layer_map",
    "freeze_bottom_layers",
    "grad_norms_by_depth",
    "model_layout",
    "param_groups",
    "prior_loss",
    "register_layer_map",
    "reinit_top_layers",
]
