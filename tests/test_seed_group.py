"""The batched step itself (:class:`~transformers_fine_tuning.batched.group.SeedGroup`), below the job: each seed's
loss and gradients from one batched forward and backward equal its own model's, on the CPU and, where there is
one, on a CUDA GPU. The job refuses batched seeds on a GPU until this passes there (``scripts/gpu_checks.sh``)."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import transformers

from transformers_fine_tuning.batched.group import SeedGroup

from tiny_models import tiny_config

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def _models(device: str, count: int, dropout: float = 0.0) -> list[torch.nn.Module]:
    """``count`` tiny BERT classifiers (without dropout unless asked), each from its own seed, in training mode."""
    config = tiny_config(
        "bert", num_layers=2, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
    )
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(transformers.BertForSequenceClassification(config).to(device).train())
    return models


def _batch(device: str, seed: int, length: int) -> dict[str, torch.Tensor]:
    """A batch of 4 sequences, the last two padded, with labels."""
    generator = torch.Generator().manual_seed(100 + seed)
    input_ids = torch.randint(5, 99, (4, length), generator=generator)
    attention_mask = torch.ones(4, length, dtype=torch.long)
    attention_mask[2:, length - 3 :] = 0
    input_ids[attention_mask == 0] = 0
    labels = torch.randint(0, 2, (4,), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    return {key: value.to(device) for key, value in batch.items()}


@pytest.mark.parametrize("device", DEVICES)
def test_a_batched_step_gives_each_seed_its_own_loss_and_gradients(device: str) -> None:
    count = 3
    models = _models(device, count)
    alone = copy.deepcopy(models)
    batches = [_batch(device, seed, length) for seed, length in zip(range(count), (12, 16, 9), strict=True)]
    expected_losses = []
    for model, batch in zip(alone, batches, strict=True):
        loss = model(**batch).loss
        loss.backward()
        expected_losses.append(loss.item())

    group = SeedGroup(models, seeds=list(range(count)), pad_token_id=0)
    losses = _group_step(group, models, batches)

    assert losses == pytest.approx(expected_losses, rel=1e-5)
    assert len(set(losses)) == count  # the seeds differ, so each was compared with its own
    for together, reference in zip(models, alone, strict=True):
        named = dict(reference.named_parameters())
        for name, param in together.named_parameters():
            torch.testing.assert_close(param.grad, named[name].grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_batched_forward_runs_in_the_modes_of_the_seeds_models() -> None:
    """``from_pretrained`` returns a model in evaluation mode and the Trainer switches it to training at each step,
    after the group was formed: the batched forward must then apply dropout as the seeds' own forwards would (it
    once ran the copy made at grouping, in evaluation mode, and trained every batched seed without dropout).
    Each seed's loss must differ from its evaluation-mode loss on the same batch; with the seeds' dropout
    modules in evaluation mode, it must equal it."""
    count = 2
    models = _models("cpu", count, dropout=0.3)
    for model in models:
        model.eval()
    batches = [_batch("cpu", seed, 12) for seed in range(count)]
    with torch.no_grad():
        without_dropout = [model(**batch).loss.item() for model, batch in zip(models, batches, strict=True)]

    group = SeedGroup(models, seeds=list(range(count)), pad_token_id=0)
    for model in models:
        model.train()
    losses = _group_step(group, models, batches)
    assert all(
        loss != pytest.approx(reference, rel=1e-4)
        for loss, reference in zip(losses, without_dropout, strict=True)
    )

    for model in models:  # a module the seeds keep in evaluation mode stays so in the batched forward
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
    assert _group_step(group, models, batches) == pytest.approx(without_dropout, rel=1e-5)


def _group_step(group: SeedGroup, models: list[torch.nn.Module], batches: list[dict]) -> list[float]:
    """One training step of every seed through the group, each in its own thread as in the job; their losses."""

    def step(index: int) -> float:
        try:
            loss = models[index](**batches[index]).loss
            loss.backward()
            group.backward(index)
            return loss.item()
        except BaseException as error:
            group.abort(error)
            raise

    with ThreadPoolExecutor(max_workers=len(models)) as pool:
        return list(pool.map(step, range(len(models))))
