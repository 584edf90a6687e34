"""Shared helpers of the ``scripts/bench_*.py`` benchmarks: machine facts, load, statistics, BENCHMARKS.md.

Every benchmark compares its variants side by side in one process (or one driver), interleaved A B C A B C …
so that drift — another job starting, the CPU clocking down — hits every variant alike, and reports the
median with its spread and the per-repetition ratios. Each script owns one section of ``BENCHMARKS.md``,
between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``; running it replaces that section and
leaves the rest of the file (the hand-written analysis) as it is.
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

_HEADER = """# Benchmarks

Measured with the project's own scripts (`scripts/bench_*.py`); each section below is rewritten by the
script named in it, the analysis between the sections by hand. Variants are always run side by side,
interleaved within each repetition, and reported as the median with its spread over the repetitions;
ratios are taken per repetition (so drift common to both cancels) and summarised the same way.
"""


def glue_dir() -> Path:
    """The GLUE root holding RTE/ and MRPC/: ``$TFT_GLUE_DIR``, the checkout's ``../shared/glue``, the cache,
    or else the cache built from the Hub (``find_glue_dir(..., build=True)``, which needs network access)."""
    from transformers_fine_tuning.tasks.glue.export import find_glue_dir

    try:
        found, failure = find_glue_dir([ROOT.parent / "shared" / "glue"], build=True), ""
    except ConnectionError as error:
        found, failure = None, f" ({' '.join(str(error).split())})"
    if found is None:
        raise FileNotFoundError(
            f"no GLUE data (RTE, MRPC) beside the project or in the cache, and none built from the Hub"
            f"{failure}: set TFT_GLUE_DIR to a GLUE-layout directory, or run "
            "`python -m transformers_fine_tuning.tasks.glue.export` with network access"
        )
    return found


def cpu_model() -> str:
    """The CPU's model name as ``/proc/cpuinfo`` gives it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total physical memory in GiB, or ``None`` where ``/proc/meminfo`` is missing."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine_summary() -> str:
    """One line: CPU, cores, torch threads, memory, accelerator, library versions."""
    import torch
    import transformers

    memory = memory_gib()
    accelerator = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores (torch threads: {torch.get_num_threads()}), "
        f"{memory:.0f} GiB RAM, {accelerator}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages."""
    return os.getloadavg()


def wait_for_quiet(max_load: float, timeout_s: float, poll_s: float = 15.0) -> tuple[float, float, float]:
    """Wait until the 1-minute load average is below ``max_load`` (or ``timeout_s`` passed); return the load.

    Timings taken while other jobs share the cores measure the other jobs too; waiting for a quiet machine
    is the cheapest way to get figures that mean something. ``max_load <= 0`` does not wait.
    """
    deadline = time.monotonic() + timeout_s
    load = load_average()
    while max_load > 0 and load[0] >= max_load and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: load {load[0]:.2f} >= {max_load}", file=sys.stderr, flush=True)
        time.sleep(poll_s)
        load = load_average()
    return load


def _cpu_seconds() -> tuple[float, float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot (``/proc/stat``), and this process's own
    CPU seconds, its finished children included."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return math.nan, math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    own = os.times()
    return (
        (user + nice + system + irq + softirq) / ticks,
        steal / ticks,
        own.user + own.system + own.children_user + own.children_system,
    )


@dataclass
class LoadLog:
    """What else ran while a benchmark measured: load averages sampled between repetitions, and the CPU time
    the *other* processes used (the machine's busy time minus this benchmark's own), in cores."""

    samples: list[float]
    start_wall: float
    start_cpu: tuple[float, float, float]

    @classmethod
    def start(cls) -> LoadLog:
        return cls([load_average()[0]], time.monotonic(), _cpu_seconds())

    def sample(self) -> None:
        self.samples.append(load_average()[0])

    def describe(self) -> str:
        busy, steal, own = (now - then for now, then in zip(_cpu_seconds(), self.start_cpu, strict=True))
        wall = max(time.monotonic() - self.start_wall, 1e-9)
        return (
            f"1-min load average {min(self.samples):.2f}–{max(self.samples):.2f} "
            f"(median {statistics.median(self.samples):.2f}, the benchmark itself included) over "
            f"{len(self.samples)} samples; other processes used {(busy - own) / wall:.2f} of "
            f"{os.cpu_count()} cores on average, hypervisor steal {steal / wall:.2f} cores"
        )


def quantiles(values: Sequence[float]) -> tuple[float, float, float, float, float]:
    """(min, first quartile, median, third quartile, max) of ``values``."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return (ordered[0],) * 5
    q1, q2, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return ordered[0], q1, q2, q3, ordered[-1]


def fmt_spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median [min–max]`` of ``values``."""
    low, _, median, _, high = quantiles(values)
    return f"{fmt.format(median)} [{fmt.format(low)}–{fmt.format(high)}]"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that is running, as one could paste it (relative to the project root)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:
        script_text = str(script)
    return shlex.join([".venv/bin/python", script_text, *sys.argv[1:]])


def section_preamble(title: str, load: str, extra: str = "") -> str:
    """The facts heading every generated section: command, date, machine, load."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {title}",
        "",
        f"- command: `{command_line()}`",
        f"- date: {now}",
        f"- machine: {machine_summary()}",
        f"- load while measuring: {load}",
    ]
    if extra:
        lines.append(f"- {extra}")
    return "\n".join(lines) + "\n"


def update_benchmarks_md(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section ``name`` of ``BENCHMARKS.md`` with ``body`` (append it if it is not there yet)."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"updated section {name!r} of {path}", file=sys.stderr)
