"""The course's reference list: docs/references.md is generated from fasttrain.references and up to date,
every figure is listed once, and every citation resolves inside the repository (a learner's clone has
no shared/ folder)."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import pytest
from fasttrain import references

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "references.md"
FORBIDDEN = ("REFERENCES.md", "shared/REFERENCES")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".yaml", ".yml", ".toml", ".cfg", ".json", ".sh"}


def _course_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in ("chapters", "lib", "docs"):
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts
        ]
    return files


def test_docs_references_md_is_generated_from_the_module():
    assert DOC.read_text(encoding="utf-8") == references.markdown(), (
        "docs/references.md is out of date: run `python -m fasttrain.references > docs/references.md`"
    )


def test_the_module_prints_the_list(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "fasttrain.references")  # run as `python -m`, not the imported copy
    runpy.run_module("fasttrain.references", run_name="__main__")
    assert capsys.readouterr().out == references.markdown()


def test_every_figure_is_listed_once_under_a_topic():
    listed = [id(f) for _, items in references.SECTIONS for f in items]
    assert len(listed) == len(set(listed)), "a figure is listed under two topics"
    missing = [name for name, f in references.figures().items() if id(f) not in set(listed)]
    assert not missing, f"not in references.SECTIONS: {missing}"
    assert len(listed) == len(references.figures())


def test_no_citation_points_outside_the_repository():
    cited = {}
    for path in _course_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        found = [word for word in FORBIDDEN if word in text]
        if found:
            cited[str(path.relative_to(ROOT))] = found
    assert not cited, f"a learner's clone has no shared/ folder; cite docs/references.md instead: {cited}"


def test_every_figure_names_a_real_source():
    for name, f in references.figures().items():
        assert f.source.strip(), name
        assert "REFERENCES" not in f.source, name
        assert f.source in f.cite(), name


def test_the_corrected_facts():
    r = references
    # 67% is fp32 training's zero bin, not a share that fp16 flushed
    assert "exactly zero" in r.SSD_ZERO_GRADS.what and "NOT a share that fp16 flushed" in r.SSD_ZERO_GRADS.note
    # a ring's S / B uses one direction of NVLink
    assert r.H100_NVLINK_PER_DIRECTION_GBPS.value * 2 == r.H100_NVLINK_TOTAL_GBPS.value
    from fasttrain.chapters.ch01_cost_model import GB, NAMED_LINKS

    nvlink = next(link for link in NAMED_LINKS if link.name.startswith("NVLink"))
    assert nvlink.bandwidth == r.H100_NVLINK_PER_DIRECTION_GBPS.value * GB
    # the P40's fp16 rate, and the fair baseline for bf16
    assert r.P40_FP32_OVER_FP16.value == 64
    assert round(r.H100_SXM_BF16_TFLOPS.value / r.H100_SXM_TF32_TFLOPS.value) == 2
    # a figure measured on one machine names it
    assert "AMD EPYC" in r.CPU_BF16_SLOWDOWN.cite() and "not necessarily this machine" in r.CPU_BF16_SLOWDOWN.cite()
    # reported figures say so
    for f in (r.JIA_DOUBLING_SPEEDUP, r.JIA_1024_MINUTES, r.JIA_1024_TOP1):
        assert r.REPORTED in f.note


def _links(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "chapters").glob("*.ipynb"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_resolve_inside_the_repository(path):
    broken = []
    for link in _links(path):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        target = (path.parent / link.split("#")[0]).resolve()
        if not target.exists() or ROOT not in target.parents:
            broken.append(link)
    assert not broken, f"{path.relative_to(ROOT)}: links that do not resolve in the repository: {broken}"
