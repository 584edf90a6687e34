"""The documentation holds together: README fits on a few screens, every relative link and image of README,
BENCHMARKS.md and docs/ points at a file that exists (and at a heading it has), and every page of docs/ is
reachable from README."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
PAGES = [README, PROJECT / "BENCHMARKS.md", *sorted((PROJECT / "docs").glob("**/*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a ``](`` in code is not a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation and symbols dropped, spaces to hyphens."""
    text = heading.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    slugs: list[str] = []
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), flags=re.MULTILINE):
        slug = _slug(heading)
        count = sum(1 for s in slugs if s == slug or re.fullmatch(re.escape(slug) + r"-\d+", s))
        slugs.append(f"{slug}-{count}" if count else slug)
    return set(slugs)


def _links(page: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z]+:", target)]


def test_readme_fits_on_a_few_screens():
    lines = len(README.read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines; move the reference into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(PROJECT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(PROJECT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.relative_to(PROJECT)}")
    assert not broken, f"{page.relative_to(PROJECT)}:\n" + "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [README]
    while todo:
        page = todo.pop()
        for target in _links(page):
            path = (page.parent / target.partition("#")[0]).resolve()
            if path.suffix == ".md" and path.exists() and path not in reached:
                reached.add(path)
                todo.append(path)
    orphans = [str(page.relative_to(PROJECT)) for page in PAGES if page != README and page not in reached]
    assert not orphans, f"link these from README.md or a page it links: {orphans}"


def test_the_link_check_catches_a_broken_link_and_a_missing_anchor():
    assert _slug("Heads × callbacks") == "heads--callbacks"
    assert (
        _slug("The fine-tune job: one run, one `results.json`") == "the-fine-tune-job-one-run-one-resultsjson"
    )
    assert "the-optimizer-adamwl2sp" in _anchors(PROJECT / "docs" / "optimizer.md")
    assert "no-such-heading" not in _anchors(README)
    assert _links(README), "README has relative links to check"


def test_ci_runs_the_test_command_the_readme_gives():
    commands = re.findall(r"^```bash\n(.*?)\n```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    test_command = next(command for command in commands if "pytest" in command)
    assert test_command in (PROJECT / ".ci" / "run").read_text().splitlines()


def test_the_readme_python_example_trains_and_evaluates(minilm_path, glue_dir, tmp_path, monkeypatch):
    """README's example as written, with the packaged MiniLM for bert-base-uncased, 32 local RTE pairs a split
    for the Hub's, and 3 steps on CPU: it builds, trains and reports accuracy."""
    import datasets

    def local_rte():
        files = {
            "train": str(glue_dir / "RTE" / "train.tsv"),
            "validation": str(glue_dir / "RTE" / "dev.tsv"),
        }
        rte = datasets.load_dataset("csv", delimiter="\t", quoting=3, data_files=files)
        rte = rte.map(
            lambda batch: {"target": [int(label == "not_entailment") for label in batch["label"]]},
            batched=True,
            remove_columns=["label"],
        ).rename_column("target", "label")
        return datasets.DatasetDict({split: rows.select(range(32)) for split, rows in rte.items()})

    code = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)[0]
    for written, local in [
        ('"bert-base-uncased"', repr(str(minilm_path))),
        ('load_dataset("nyu-mll/glue", "rte")', "local_rte()"),
        ('eval_strategy="epoch"', 'eval_strategy="epoch", max_steps=3, use_cpu=True, report_to=[]'),
    ]:
        assert written in code, f"README's example no longer has {written}"
        code = code.replace(written, local)
    monkeypatch.chdir(tmp_path)
    namespace = {"local_rte": local_rte}
    exec(compile(code, "README.md", "exec"), namespace)
    metrics = namespace["trainer"].evaluate()
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert namespace["trainer"].state.global_step == 3
