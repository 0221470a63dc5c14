"""The catalog (segcourse/labs/catalog.py) describes the labs as their notebooks are.

The rule, for every available lab, read from its reference notebook:

- **title**: the first markdown line that starts with ``# `` reads exactly
  ``# Lab NN — <catalog title>`` (NN the lab's number, two digits, then an em dash), and the
  notebook's ``metadata.segcourse.title`` is the catalog title too;
- **topics**: the notebook's numbered sections — markdown lines ``## <n>. <text>`` with
  ``n`` = 1, 2, 3, ... — are exactly the catalog's topics, in order: ``<text>`` of section
  ``n`` equals ``topics[n - 1]``, character for character, and there are as many sections as
  topics. Unnumbered sections (``## What you have seen``) and deeper headings (``###``) are
  not topics.

Lab 00 prints the course map from the catalog, so its stored output must be what the catalog
prints today.
"""

import re
from pathlib import Path

import nbformat
import pytest

from segcourse.labs.catalog import LABS, course_map

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = [lab for lab in LABS if lab.available]
NUMBERED_SECTION = re.compile(r"^## (\d+)\. (.+?)\s*$")


def headings(nb, prefix):
    return [line for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith(prefix)]


def numbered_sections(nb):
    """``[(n, text), ...]`` of the ``## n. text`` lines, in notebook order."""
    found = []
    for line in headings(nb, "## "):
        match = NUMBERED_SECTION.match(line)
        if match:
            found.append((int(match[1]), match[2]))
    return found


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_the_title_is_the_notebooks_first_heading(lab):
    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    first = headings(nb, "# ")
    assert first, f"{lab.notebook} has no '# ' heading"
    assert first[0] == f"# Lab {lab.number:02d} — {lab.title}"
    assert nb.metadata["segcourse"]["title"] == lab.title


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_the_topics_are_the_notebooks_numbered_sections(lab):
    nb = nbformat.read(ROOT / lab.notebook, as_version=4)
    sections = numbered_sections(nb)
    assert [n for n, _ in sections] == list(range(1, len(sections) + 1)), \
        f"{lab.notebook}: sections are not numbered 1, 2, 3, ...: {sections}"
    assert tuple(text for _, text in sections) == lab.topics


def test_the_rule_sees_a_stale_entry():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Lab 02 — Upsampling\n\n## 1. Fixed upsamplers\n## What you have seen\n"),
        nbformat.v4.new_markdown_cell("### Exercise 1\n## 2. Bicubic\n")])
    assert numbered_sections(nb) == [(1, "Fixed upsamplers"), (2, "Bicubic")]
    assert headings(nb, "# ") == ["# Lab 02 — Upsampling"]


def test_lab_00_prints_the_course_map_from_the_catalog():
    """Lab 00's map cell prints ``course_map()``, and its stored output is what that prints now
    (nbval does not compare the cell, so a stale map would otherwise go unnoticed)."""
    nb = nbformat.read(ROOT / LABS[0].notebook, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "course_map()" in c.source)
    stored = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    assert stored == course_map() + "\n"


README_ROW = re.compile(r"^\| (\d\d) \| (.+?) \| \[Open in Colab\]\((\S+)\) \|$")


def test_the_readme_lists_every_available_lab_with_its_title_and_colab_link():
    rows = [README_ROW.match(line) for line in (ROOT / "README.md").read_text().splitlines()]
    rows = [(int(row[1]), row[2], row[3]) for row in rows if row]
    assert [number for number, _, _ in rows] == [lab.number for lab in AVAILABLE], (
        "README.md's labs table must list the available labs of segcourse/labs/catalog.py, "
        "in order")
    for (_, topic, link), lab in zip(rows, AVAILABLE, strict=True):
        assert topic.startswith(lab.title), f"lab {lab.number:02d}: {topic!r} vs {lab.title!r}"
        assert link == lab.colab_url
