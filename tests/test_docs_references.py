"""The code cites only documents the repository holds.

Facts shared by several modules live in ``docs/design/``, each rule or hazard under a
stable label (see ``docs/design/README.md``), and code cites them as ``<file>.md <label>``
or, after naming the file once, by bare label.  Every text file of the repository's
code, tests, benchmarks, examples and docs is scanned, and the scan fails on:

* a path ``docs/design/<file>`` or a ``<file>.md`` followed by a label, where ``docs/design``
  has no such file;
* a label-shaped word (a prefix the named files use, then a number) that none of the
  files the text names defines, e.g. a mistyped or renumbered label;
* a label some file defines, in a text that names no file defining it (a citation that
  does not say where to look);
* the research notes the project started from, which live outside the repository: a
  ``research/`` path, a section sign, a "rule N" (cite a label instead).

``test_the_check_finds_each_kind_of_broken_citation`` runs the same check on broken
samples (which is why this file is the one file not scanned), and the scan must count
the labels it checked, so it cannot pass by finding nothing.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design"
SCANNED_DIRS = ("aiopod", "tests", "benchmarks", "examples", "docs", ".ci")
SCANNED_FILES = ("README.md", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".sh", ".yml", ".yaml", ""}

_LABEL = r"[A-Z]{1,2}[0-9]+(?:\.[0-9]+)*"
#: Where a design file defines a label: a bold list item or the first cell of a table row.
_DEFINITION = re.compile(rf"^\s*(?:[-*]\s+\*\*({_LABEL})\*\*|\|\s*({_LABEL})\s*\|)", re.M)
_TOKEN = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,2})([0-9]+(?:\.[0-9]+)*)")
_NAMED = re.compile(r"\b([\w-]+\.md)\b")
_DESIGN_PATH = re.compile(r"docs/design/([\w.-]+)")
_CITED = re.compile(r"\b([\w-]+\.md)[`'\"*]*[ \t]+(?:(?:rules?|steps?)[ \t]+)?[A-Z]{0,2}[0-9]")
_FORBIDDEN = {
    re.compile(r"\bresearch/"): "a research/ path (outside the repository)",
    re.compile("\N{SECTION SIGN}"): "a section sign (cite a docs/design label instead)",
    re.compile(r"\brules?[ -][0-9]", re.I): '"rule N" (cite a docs/design label instead)',
}
#: Linter codes (``noqa: B023``) look like labels.
_LINTER_CODES = re.compile(r"#\s*noqa\b[^\n]*|type:\s*ignore\[[^\]]*\]")
_PROSE_TOKENS = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)}


def design_labels(design: Path = DESIGN) -> dict[str, frozenset[str]]:
    """Every file of *design* and the labels it defines."""
    return {
        doc.name: frozenset(a or b for a, b in _DEFINITION.findall(doc.read_text()))
        for doc in sorted(design.glob("*.md"))
    }


def check(text: str, docs: Mapping[str, frozenset[str]], *, own: str | None = None) -> list[str]:
    """What is wrong with the citations of *text* (*own*: the design file it is)."""
    problems = [
        f"{what}: {m.group(0)!r}"
        for pattern, what in _FORBIDDEN.items()
        for m in pattern.finditer(text)
    ]
    problems += [
        f"docs/design/{m.group(1)} does not exist"
        for m in _DESIGN_PATH.finditer(text)
        if m.group(1).rstrip(".") not in docs
    ]
    problems += [
        f"{m.group(1)} is not in docs/design: {m.group(0)!r}"
        for m in _CITED.finditer(text)
        if m.group(1) not in docs
    ]
    named = {name for name in _NAMED.findall(text) if name in docs} | ({own} if own else set())
    known = frozenset().union(*(docs[name] for name in named))
    prefixes = {label.rstrip("0123456789.") for label in known}
    defined_anywhere = frozenset().union(*docs.values())
    for m in _TOKEN.finditer(_LINTER_CODES.sub("", text)):
        label = m.group(0)
        if m.group(1) in prefixes and label not in known:
            problems.append(f"{label} is not defined in {', '.join(sorted(named))}")
        elif m.group(1) not in prefixes and label in defined_anywhere:
            owners = sorted(name for name, labels in docs.items() if label in labels)
            problems.append(f"{label} cites no document (name {' or '.join(owners)})")
    return problems


def prose(path: Path, text: str) -> str:
    """The part of *path* that can cite: all of a text file; of a Python module its
    comments, strings and the names it defines (``test_L7_...``), not the names it uses
    (a constant ``C1`` is no citation)."""
    if path.suffix != ".py":
        return text
    parts, previous = [], ""
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in _PROSE_TOKENS or (
            token.type == tokenize.NAME and previous in ("def", "class")
        ):
            parts.append(token.string)
        previous = token.string
    return "\n".join(parts)


def scanned_files() -> Iterator[Path]:
    for name in SCANNED_FILES:
        yield ROOT / name
    for top in SCANNED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path


def citations(text: str, docs: Mapping[str, frozenset[str]]) -> int:
    """How many design labels *text* uses (so that the scan is seen to find something)."""
    defined = frozenset().union(*docs.values())
    return sum(1 for m in _TOKEN.finditer(_LINTER_CODES.sub("", text)) if m.group(0) in defined)


def test_the_code_cites_only_design_documents_that_exist_with_their_labels() -> None:
    docs = design_labels()
    problems: list[str] = []
    cited = 0
    for path in scanned_files():
        if path == Path(__file__).resolve():
            continue  # the broken samples below
        try:
            text = prose(path, path.read_text())
        except UnicodeDecodeError:
            continue  # a binary file of the example root file system
        own = path.name if path.parent == DESIGN else None
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in check(text, docs, own=own)]
        cited += citations(text, docs) if own is None else 0
    assert problems == []
    assert cited > 200  # the scenarios, the hazard tests and the modules that cite them


def test_the_design_files_define_the_labels_the_code_uses() -> None:
    docs = design_labels()
    assert {f"A{n}" for n in range(1, 9)} | {"B12.5", "C20.3", "G30"} <= docs["removal-rules.md"]
    assert {f"LP{n}" for n in range(1, 7)} <= docs["removal-rules.md"]
    hostile = {f"L{n}" for n in range(1, 24)} | {f"A{n}" for n in range(1, 9)}
    assert hostile | {f"B{n}" for n in range(1, 13)} <= docs["hostile-input.md"]


@pytest.mark.parametrize(
    ("sample", "complaint"),
    [
        ("bypassed (see ``research/reliability.md`` §2)", "research/ path"),
        ("tarfile cannot write them (research §2.9)", "section sign"),
        ("the resolved name is empty (podman rule 9)", '"rule N"'),
        ("Parents (podman-rules.md rule 21)", "podman-rules.md is not in docs/design"),
        ("never extracted (``reliability.md`` B6)", "reliability.md is not in docs/design"),
        ("see docs/design/nosuch.md", "docs/design/nosuch.md does not exist"),
        ("hostile-input.md B99: a label that is not there", "B99 is not defined"),
        ("removal-rules.md B12.8", "B12.8 is not defined"),
        ("so nothing a command starts outlives it (B8).", "B8 cites no document"),
        ("removal-rules.md A3; but L7 is a hazard", "L7 cites no document"),
    ],
)
def test_the_check_finds_each_kind_of_broken_citation(sample: str, complaint: str) -> None:
    problems = check(sample, design_labels())
    assert any(complaint in p for p in problems), problems


def test_the_check_accepts_labels_of_the_files_a_text_names() -> None:
    sample = (
        "Lookup follows removal-rules.md B12 (B12.2 and B12.4; not B12.1-B12.3), the layer\n"
        "tree C21; hostile-input.md L1-L23 and A4.  # noqa: B023\n"
        "Also docs/design/hostile-input.md.  A file ``c.md`` of a test context, T0.\n"
    )
    assert check(sample, design_labels()) == []
    assert citations(sample, design_labels()) == 9
