"""Documentation references: nothing cites files outside the repository, and every link to a
``docs/<file>.md#<anchor>`` (or a Markdown link to a heading) lands on a real heading.

Anchors follow GitHub's rule for heading ids: lower case; every character that is not a
letter, digit, underscore, hyphen or space dropped; spaces become hyphens; a repeated id gets
``-1``, ``-2``, ... (see docs/design.md#code-style for why the docs are the references).
"""

import pathlib
import posixpath
import re
import subprocess
from typing import Dict, List, Set

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
THIS_FILE = "tests/test_docs.py"  # it spells out forbidden citations and made-up links

#: citations of files that live outside the repository (the design notes it was built from)
OUTSIDE_CITATION = re.compile(r"\bSPEC\b|\b(?:API|MIDAS|STYLE)\.md\b|\.\./shared\b")
#: ``docs/<file>.md#<anchor>`` anywhere in a file (code, docstrings, Markdown)
DOCS_REFERENCE = re.compile(r"\bdocs/([\w.-]+\.md)#([\w-]+)")
#: a Markdown link target with an anchor: ``](path.md#anchor)`` or ``](#anchor)``
MARKDOWN_LINK = re.compile(r"\]\(([^()\s#]*)#([^()\s]+)\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def tracked_text_files() -> Dict[str, str]:
    """``{path relative to the repository (POSIX): text}`` for every tracked UTF-8 text file."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = {}
    for rel in out.decode("utf-8").split("\0"):
        path = ROOT / rel
        if not rel or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        try:
            files[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files


def github_slug(heading: str) -> str:
    """The id GitHub gives a Markdown heading (without the duplicate suffix)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def markdown_anchors(text: str) -> Set[str]:
    """Every heading id of a Markdown text (headings inside fenced code blocks are not headings)."""
    anchors, seen, fenced = set(), {}, False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def link_problems(files: Dict[str, str]) -> List[str]:
    """``"<file>: <reference>: <what is wrong>"`` for every reference to a missing file or heading."""
    anchors = {rel: markdown_anchors(text) for rel, text in files.items() if rel.endswith(".md")}
    problems = []
    for rel, text in sorted(files.items()):
        refs = {(f"docs/{name}", anchor) for name, anchor in DOCS_REFERENCE.findall(text)}
        if rel.endswith(".md"):
            for target, anchor in MARKDOWN_LINK.findall(text):
                if target == "":
                    refs.add((rel, anchor))
                elif target.endswith(".md") and "://" not in target:
                    refs.add((posixpath.normpath(posixpath.join(posixpath.dirname(rel), target)), anchor))
        for target, anchor in sorted(refs):
            if target not in anchors:
                problems.append(f"{rel}: {target}#{anchor}: no such tracked file")
            elif anchor not in anchors[target]:
                problems.append(f"{rel}: {target}#{anchor}: no such heading")
    return problems


def test_nothing_cites_files_outside_the_repository():
    found = [f"{rel}:{number}: {line.strip()}"
             for rel, text in sorted(tracked_text_files().items()) if rel != THIS_FILE
             for number, line in enumerate(text.splitlines(), 1) if OUTSIDE_CITATION.search(line)]
    assert not found, "cite docs/ instead:\n" + "\n".join(found)


def test_doc_references_point_to_existing_headings():
    files = {rel: text for rel, text in tracked_text_files().items() if rel != THIS_FILE}
    problems = link_problems(files)
    assert not problems, "\n".join(problems)


def test_github_slug_rule():
    assert github_slug("Data flow") == "data-flow"
    assert github_slug("Meshes [`ivid.geometry.mesh`]") == "meshes-ividgeometrymesh"
    assert github_slug("Reproducing the paper's protocols (ImageNet 128x128)") == \
        "reproducing-the-papers-protocols-imagenet-128x128"
    assert github_slug("3D consistency") == "3d-consistency"
    assert github_slug("clean-fid mode (`--mode`)") == "clean-fid-mode---mode"
    assert github_slug("Settings and budgets") == "settings-and-budgets"
    text = "# Title\n## Usage\n```bash\n# not a heading\n```\n## Usage\n### A_b, c!\n"
    assert markdown_anchors(text) == {"title", "usage", "usage-1", "a_b-c"}


def test_bad_references_are_reported():
    files = {
        "docs/guide.md": "# Guide\n## Setup\nSee [setup](#setup), [x](#nope) and [o](other.md#intro).\n",
        "docs/other.md": "# Other\n## Intro\n",
        "pkg/mod.py": '"""See docs/guide.md#setup, docs/guide.md#missing and docs/gone.md#intro."""\n',
    }
    assert link_problems(files) == [
        "docs/guide.md: docs/guide.md#nope: no such heading",
        "pkg/mod.py: docs/gone.md#intro: no such tracked file",
        "pkg/mod.py: docs/guide.md#missing: no such heading",
    ]
