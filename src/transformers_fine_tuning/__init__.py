"""Stable fine-tuning of pretrained encoders with the Hugging Face Trainer.

AdamW with L2-SP, layer-wise learning-rate decay, re-initialisation, freezing, Mixout, LoRA, NoisyTune, weight
averaging (EMA, SWA), R3F, WiSE-FT, LP-FT and gradual unfreezing, each one argument away, a Trainer that builds its optimizer after the model is on its device (CPU, CUDA, TPU), and seed studies
that show the distribution of runs.

The package, each module importing only from those above it (tested: ``tests/test_package.py``), so the list
reads from the pieces up to the job and the study. A run's data flows: flags or a config file → ``arguments`` (a
recipe's values under them) → ``build`` (callbacks, optimizer, adapters) → ``fine_tune.prepare`` (the task's data
from ``tasks``, the model from ``modeling``) → ``TrainerOptimizerInit`` (surgery, the parameter groups,
the optimizer, training) → ``results.json`` (``results``) → a study's store, statistics, report and plots
(``study``)::

    deprecation.py    the warning an old import path gives: deprecated, removed in 0.3.0, where to import from
    atomic.py         files written whole: a temporary file, fsync, rename
    textfiles.py      reading a data file's text: the encoding checked, the bad line named
    restarts.py       restarts until success: the rule (seeds in order until N succeed, at most M), the job's tally
    recipes/          the papers' recipes, as YAML
    hub.py            whether the Hub can be reached, known in seconds
    tasks/            the task layer: load_task(name, data values) → the task and its splits; the Task protocol,
                      metrics and tokenisation for any task; glue/: the GLUE table, its data (GLUE layout, files,
                      Hub), the layout written; custom: your own data (files, save_to_disk, Hub) and its labels
    glue/             the former import path of tasks/ (glue.tasks, glue.metrics, ...), removed in 0.3.0
    data_labels.py    the former import path of tasks/labels.py, removed in 0.3.0
    data.py           the former import path of tasks/custom.py and load_task_and_datasets, removed in 0.3.0
    modeling.py       the pretrained model and tokenizer, with a new head for the task
    layer_maps.py     the table of each encoder's layer stack and pooler; the encoder found inside a model
    discovery.py      the layer map of a model outside the table, found from its modules and one forward pass
    architectures.py  a model's layout: the table's or discovered map, checked, and what is new (not in the checkpoint)
    adapters.py       LoRA adapters (PEFT)
    optim/            AdamWL2SP, and the parameter groups (decay, pretrained or novel, depth)
    techniques/       one module per technique, its function on a model and its Trainer callback (reinit, freeze,
                      mixout, llrd, l2sp, noisytune, ema, swa, r3f, wise_ft, lp_ft, gradual_unfreezing); base: the
                      callbacks' contract with the Trainer (check, surgery, group shaping, loss terms, evaluation
                      weights, checkpoint state, after training); registry: each one's flags, order, exclusions
                      and reason it cannot act under adapters, declared once for the argument checks, the
                      callbacks' checks and the builder
    callbacks/        the techniques' callbacks from one import path (public API); its submodules removed in 0.3.0
    surgery.py        the former import path of re-initialisation, freezing, Mixout, NoisyTune, removed in 0.3.0
    averaging.py      the former import path of EMA, SWA and WiSE-FT's functions, removed in 0.3.0
    r3f.py            the former import path of techniques/r3f.py, removed in 0.3.0
    failure.py        what a failed run is, defined once: the rules, in order, and the verdict results.json records
    diagnostics/      gradient norms, loss spikes, the non-finite guard, the early-failure and dev-failure tests
    seeds.py          one seed per source of randomness: head, data order, dropout, training subset
    trainer/          TrainerOptimizerInit, and build_fine_tuning_optimizer that it (or any loop) calls
    transformers/     trainer/'s former import path, kept for the public API
    best.py           the best evaluation beside the last: its step, and the split that chose it
    provenance.py     where a run ran and with what: the device in words, the libraries' versions
    results.py        the results.json schema: its one writer and one reader
    evaluation.py     the predictions of each evaluation, kept for the results; length-sorted evaluation
    resume.py         resuming from the last complete checkpoint of the same arguments
    interrupt.py      SIGTERM/SIGINT during training: a checkpoint at the next step boundary, then stop
    timings.py        where a run's time goes, phase by phase
    arguments/        the run's arguments as inert dataclasses (ranges and the rules between flags checked when made);
                      parsing: flags or a config file (HfArgumentParser), a recipe's values under them
    build.py          the arguments turned into callbacks, the optimizer class and its options, and adapters
    job_data.py       the job's splits cut to size, a held-out split set aside, evaluation by length
    job_results.py    the job's results.json assembled from the trained Trainer, and judged
    fine_tune.py      the job: parse → prepare → run → results.json (tft-fine-tune)
    batched/          seeds trained together: one batched forward and backward, each seed's own job around it
                      (tft-fine-tune-seeds)
    study/            seed studies (tft-study): run/ (spec → store → backends, workers) → analysis/ (the numbers)
                      → report/ (verdicts, summary.md and .csv, plots); pipeline.py strings them together
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
from .techniques import (
    EMACallback,
    FineTuningCallback,
    FineTuningPlan,
    FreezeCallback,
    GradualUnfreezingCallback,
    L2SPCallback,
    LLRDCallback,
    LossTermCallback,
    LPFTCallback,
    MixoutCallback,
    MixoutLinear,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    SWACallback,
    WeightAverage,
    WeightAveragingCallback,
    WiSEFTCallback,
    apply_mixout,
    apply_noisytune,
    choose_wise_ft_alpha,
    ema_decay_from_half_life,
    ema_weight,
    freeze_bottom_layers,
    r3f_term,
    reinit_top_layers,
    strip_mixout,
    swa_weight,
    symmetric_kl,
    wise_ft_interpolate,
)
from .trainer import TrainerOptimizerInit, build_fine_tuning_optimizer

__version__ = "0.2.0"

__all__ = [
    "LAYER_MAPS",
    "AdamWL2SP",
    "DevFailureCallback",
    "DiagnosticCallback",
    "EMACallback",
    "EarlyFailureCallback",
    "FineTuningCallback",
    "FineTuningPlan",
    "FreezeCallback",
    "GradNormCallback",
    "GradualUnfreezingCallback",
    "L2SPCallback",
    "LLRDCallback",
    "LPFTCallback",
    "LayerMap",
    "LossSpikeCallback",
    "LossTermCallback",
    "MixoutCallback",
    "MixoutLinear",
    "ModelLayout",
    "NoisyTuneCallback",
    "NonFiniteGuardCallback",
    "R3FCallback",
    "ReinitCallback",
    "SWACallback",
    "TrainerOptimizerInit",
    "WeightAverage",
    "WeightAveragingCallback",
    "WiSEFTCallback",
    "apply_lora",
    "apply_mixout",
    "apply_noisytune",
    "build_fine_tuning_optimizer",
    "choose_wise_ft_alpha",
    "discover_layer_map",
    "ema_decay_from_half_life",
    "ema_weight",
    "freeze_bottom_layers",
    "grad_norms_by_depth",
    "model_layout",
    "param_groups",
    "prior_loss",
    "r3f_term",
    "register_layer_map",
    "reinit_top_layers",
    "strip_mixout",
    "swa_weight",
    "symmetric_kl",
    "wise_ft_interpolate",
]
