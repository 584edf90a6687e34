"""The table (Markdown + CSV), the plots and the progress line, from hand-built run records."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from matplotlib import image

from transformers_fine_tuning.results import Evaluation
from transformers_fine_tuning.study import Progress, StoreCounts, plot_study, summarize, write_report
from transformers_fine_tuning.study.analysis.stats import holm
from transformers_fine_tuning.study.report.verdict import verdicts
from transformers_fine_tuning.study.run.progress import format_duration
from transformers_fine_tuning.study.run.store import RunRecord

BASELINE = 0.527


def record(
    task: str,
    recipe: str,
    seed: int,
    value: float | None,
    status: str = "completed",
    *,
    data_seed: int | None = None,
    predictions: list[int] | None = None,
    wall_time_s: float = 60.0,
    stopped_early: str | None = None,
) -> RunRecord:
    """A run record as the store returns it; its curve climbs to ``value`` (or stays flat if failed)."""
    failed = None if value is None else value <= BASELINE or stopped_early is not None
    curve = [] if value is None else [BASELINE + (value - BASELINE) * step / 4 for step in range(1, 5)]
    data_seed = seed if data_seed is None else data_seed
    return RunRecord(
        run_id=f"{task}/{recipe}/seed{seed}-data{data_seed}",
        position=seed,
        task=task,
        recipe=recipe,
        seed=seed,
        data_seed=data_seed,
        wall_time_s=wall_time_s,
        predictions={} if predictions is None else {"validation": predictions},
        stopped_early=stopped_early,
        status=status,
        attempts=1,
        output_dir="/nowhere",
        config_hash="0",
        argv=(),
        main_metric_name=None if value is None else "accuracy",
        main_metric_split=None if value is None else "validation",
        main_metric=value,
        constant_baseline=None if value is None else BASELINE,
        failed_run=failed,
        evaluations=[
            Evaluation(10 * (i + 1), None, "validation", {"accuracy": v}) for i, v in enumerate(curve)
        ],
    )


DEVLIN = [0.70, 0.527, 0.68, 0.527, 0.71, 0.66]
MOSBACH = [0.72, 0.71, 0.73, 0.70, 0.72, 0.74]


@pytest.fixture
def runs() -> list[RunRecord]:
    runs = [record("rte", "devlin2019", seed, value) for seed, value in enumerate(DEVLIN)]
    runs += [record("rte", "mosbach2021", seed, value) for seed, value in enumerate(MOSBACH)]
    runs += [
        record("rte", "mosbach2021", 6, None, status="error"),
        record("rte", "mosbach2021", 7, None, "pending"),
    ]
    runs += [record("mrpc", "devlin2019", seed, 0.8 + 0.01 * seed) for seed in range(3)]
    return runs


def test_summary_table(tmp_path, runs):
    summaries = summarize(
        runs, baseline="devlin2019", recipes=["devlin2019", "mosbach2021"], tasks=["rte", "mrpc"]
    )
    assert [(s.task, s.recipe) for s in summaries] == [
        ("rte", "devlin2019"),
        ("rte", "mosbach2021"),
        ("mrpc", "devlin2019"),
    ]
    devlin, mosbach = summaries[0], summaries[1]
    assert devlin.comparison is None and mosbach.comparison is not None
    assert devlin.description.n == 6 and devlin.description.failed_runs == 2
    assert mosbach.description.n == 6 and mosbach.errors == 1 and mosbach.unfinished == 1
    assert mosbach.description.mean == pytest.approx(np.mean(MOSBACH))
    assert devlin.constant_baseline == BASELINE and devlin.metric == "accuracy"

    markdown, table = write_report(
        runs,
        tmp_path,
        title="demo",
        baseline="devlin2019",
        recipes=["devlin2019", "mosbach2021"],
        tasks=["rte", "mrpc"],
        plots={"rte": [("final", "plots/rte-final.png")]},
        n_resamples=999,
    )
    rows = list(csv.DictReader(table.open()))
    assert [(row["task"], row["recipe"], row["n"], row["failed_runs"]) for row in rows] == [
        ("rte", "devlin2019", "6", "2"),
        ("rte", "mosbach2021", "6", "0"),
        ("mrpc", "devlin2019", "3", "0"),
    ]
    assert float(rows[1]["mean"]) == pytest.approx(np.mean(MOSBACH))  # unrounded
    assert float(rows[0]["std"]) == pytest.approx(np.std(DEVLIN, ddof=1))
    assert (
        rows[0]["brown_forsythe_p"] == "" and float(rows[1]["brown_forsythe_p"]) > 0
    )  # no test against itself
    assert float(rows[0]["ci95_low"]) < float(rows[0]["mean"]) < float(rows[0]["ci95_high"])
    text = markdown.read_text()
    assert "## rte: accuracy on validation (best constant predictor 0.5270)" in text
    assert "| devlin2019 (baseline) | 6 | " in text
    comparison = next(line for line in text.splitlines() if line.startswith("| mosbach2021 | 0."))
    assert f"{np.mean(MOSBACH) - np.mean(DEVLIN):+.4f} [" in comparison  # Δ mean with its interval
    assert "2/6" in text and "![final](plots/rte-final.png)" in text
    # every table row has as many cells as its header (no target score: no "runs to reach" column)
    table_lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = next(line for line in table_lines if line.startswith("| recipe | E[best of 1]"))
    rows = [
        line for line in table_lines[table_lines.index(header) + 1 :] if line.startswith("| devlin2019 | ")
    ]
    assert "runs to reach" not in header and rows and rows[0].count("|") == header.count("|")


def test_plots_are_written_and_not_empty(tmp_path, runs):
    figures = plot_study(
        runs, tmp_path / "plots", recipes=["devlin2019", "mosbach2021"], tasks=["rte", "mrpc"]
    )
    assert sorted(figures) == ["mrpc", "rte"]
    paths = [path for made in figures.values() for _, path in made]
    assert sorted(path.name for path in paths) == [
        "mrpc-curves.png",
        "mrpc-expected-max.png",
        "mrpc-final.png",
        "rte-curves.png",
        "rte-expected-max.png",
        "rte-final.png",
    ]
    for path in paths:
        assert path.stat().st_size > 15_000  # a drawn figure, not an empty canvas
        pixels = image.imread(path)
        assert pixels.shape[0] > 400 and pixels.shape[1] > 400
        assert pixels[..., :3].std() > 0.05  # something is drawn on the white


def test_no_completed_run_no_plot(tmp_path):
    assert plot_study([record("rte", "llrd", 0, None, status="pending")], tmp_path) == {"rte": []}


def test_progress_line_and_time_left():
    now = [100.0]
    lines = []

    class Stream:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    progress = Progress("demo", slots=2, stream=Stream(), clock=lambda: now[0])
    progress.start(StoreCounts(pending=8, completed=2, mean_wall_time_s=60.0))
    # before each worker has finished a run here: the mean run time, 8 runs over 2 workers
    assert progress.seconds_left(StoreCounts(pending=8, completed=2, mean_wall_time_s=60.0)) == pytest.approx(
        240.0
    )
    now[0] += 100
    counts = StoreCounts(pending=4, running=2, completed=3, error=1, failed_runs=1, mean_wall_time_s=70.0)
    # then this invocation's throughput: 2 runs finished in 100 s, 6 left
    assert progress.seconds_left(counts) == pytest.approx(300.0)
    progress.update(counts)
    progress.update(counts)  # unchanged: not printed again
    printed = [line for line in lines if line.strip()]
    assert len(printed) == 2
    assert printed[-1] == (
        "[demo] 4/10 runs done · 1 failed run · 1 error · 2 running · 0:01:40 elapsed · about 0:05:00 left"
    )
    assert format_duration(2 * 86400 + 3661) == "2 days, 1:01:01"


def test_summary_decides_what_a_study_can_decide(tmp_path):
    """Crossed seeds, predictions, a pruned run and a recipe that always fails, through to summary.md."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(5):
        for data_seed in range(4):  # crossed: 20 runs a recipe; the init seed moves the score most
            value = 0.62 + 0.03 * (seed - 2) + 0.005 * data_seed + rng.normal(0, 0.002)
            predictions = [int(x) for x in rng.integers(0, 2, 40)]
            runs.append(
                record("rte", "mosbach2021", seed, value, data_seed=data_seed, predictions=predictions)
            )
        runs.append(
            record("rte", "devlin2019", seed, [0.60, 0.527, 0.66, 0.527, 0.64][seed], predictions=[1] * 40)
        )
        runs.append(
            record("rte", "zhang2021-reinit", seed, 0.527, stopped_early="dev_failure" if seed else None)
        )
    summaries = summarize(
        runs,
        baseline="devlin2019",
        recipes=["devlin2019", "mosbach2021", "zhang2021-reinit"],
        n_resamples=999,
        target_score=0.62,
    )
    devlin, mosbach, zhang = summaries
    assert zhang.description.degenerate and not mosbach.description.degenerate
    assert zhang.pruned == 4 and zhang.description.failed_runs == 5
    assert math.isnan(zhang.comparison.std_ratio)  # never "more stable" than the baseline
    assert mosbach.comparison.comparisons == zhang.comparison.comparisons == 2
    for test in ("brown_forsythe_p", "mann_whitney_p", "fisher_p"):
        raw = [getattr(s.comparison, test) for s in (mosbach, zhang)]
        assert [getattr(s.comparison, f"{test}_holm") for s in (mosbach, zhang)] == pytest.approx(
            holm(raw), nan_ok=True
        )
    assert devlin.churn.mean == 0.0 and 0.4 < mosbach.churn.mean < 0.6  # constant vs random predictions
    assert mosbach.expected_max.n[-1] == 20 and mosbach.expected_max.at(20) == max(
        r.main_metric for r in runs if r.recipe == "mosbach2021"
    )
    assert devlin.runs_to_target == 2 and zhang.runs_to_target is None
    assert devlin.compute_s == 300.0 and devlin.compute_per_success_s == 100.0  # 3 of 5 runs succeeded
    variance = mosbach.variance
    assert variance is not None and devlin.variance is None  # only mosbach2021 crosses its seeds
    assert variance.levels == {"init": 5, "data order": 4}
    assert variance.shares["init"] > 0.9

    verdict = verdicts(summaries)["rte"]
    assert (
        "of a single run: **mosbach2021**" in verdict
        and "degenerate" in verdict
        and "zhang2021-reinit" in verdict
    )
    assert "Holm" in verdict and "With 5 runs per recipe, read this as a hint." in verdict

    markdown, table = write_report(
        runs,
        tmp_path,
        title="decide",
        baseline="devlin2019",
        recipes=["devlin2019", "mosbach2021", "zhang2021-reinit"],
        n_resamples=999,
        target_score=0.62,
    )
    text = markdown.read_text()
    assert text.index("**Verdict, rte:**") < text.index("## rte")
    assert "| zhang2021-reinit ⚠ | 5 |" in text and "5 (4 pruned)" in text
    assert "⚠ zhang2021-reinit: failed 5 of 5 runs" in text and "– (degenerate)" in text
    assert "Holm-adjusted over the 2 recipes compared with devlin2019, per test." in text
    header = "| recipe | E[best of 1] | E[best of 3] | E[best of 5] | E[best of 10] | E[best of 20] | runs to reach 0.6200"
    assert header in text
    assert (
        "| recipe | runs | levels | init share [95 % CI] | data order share [95 % CI] | residual share [95 % CI] |"
        in text
    )
    assert "| mosbach2021 | 20 | 5 init × 4 data order |" in text
    rows = {row["recipe"]: row for row in csv.DictReader(table.open())}
    assert rows["zhang2021-reinit"]["degenerate"] == "True" and rows["zhang2021-reinit"]["pruned"] == "4"
    assert float(rows["mosbach2021"]["churn"]) == pytest.approx(mosbach.churn.mean)
    assert rows["mosbach2021"]["variance_shares"].startswith("init=0.9")
    curves = list(csv.DictReader((tmp_path / "expected_max.csv").open()))
    assert [row["n"] for row in curves if row["recipe"] == "devlin2019"] == ["1", "2", "3", "4", "5"]
