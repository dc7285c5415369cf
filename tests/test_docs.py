"""The manual and the README: the site builds strictly (no broken link, page or heading), the
README stays a short front page whose links all lead somewhere, and the architecture page names
every module there is."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

from tests.conftest import ROOT, skip_or_fail

# [text](target) and ![alt](target); the text may run over several lines.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", re.S)


def relative_links(markdown: str) -> list[str]:
    """Link targets that name a file of the repository (no URL, no anchor-only link)."""
    targets = []
    for target in LINK.findall(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_manual_builds_strictly(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The README is the home page, with its links into docs/ made the site's own.
    home = (site / "index.html").read_text()
    assert 'href="cli.html"' in home
    assert 'href="docs/' not in home
    # Files that live outside docs/ are in the site (docs/hooks.py), not copied into docs/.
    for name in ("classic.png", "quick-draft.png"):
        assert (site / "presets" / "gallery" / name).is_file()
    assert (site / "benchmarks" / "results" / "quality-512.jpg").is_file()
    assert (site / "img" / "web-app.png").is_file()


def test_the_readme_is_short_and_every_relative_link_leads_to_a_file():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    targets = relative_links(readme)
    assert "docs/cli.md" in targets and "docs/img/presets-gallery.png" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_the_link_finder_sees_what_markdown_sees():
    text = "![a\nb](docs/img/x.png) [c](https://x.org) [d](#e) [f](docs/g.md#h) `[i](j)`"
    assert relative_links(text) == ["docs/img/x.png", "docs/g.md", "j"]


def test_no_hand_copied_test_counts_or_times():
    """Counts and times of test runs go stale the day they are written: run the tests instead."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found = re.findall(r"\b\d+ (?:passed|tests\b)", page.read_text())
        assert not found, f"{page.name}: {found}"


def test_the_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p.name for p in sorted((ROOT / "impasto").glob("*.py"))]
    for package in sorted((ROOT / "impasto").glob("*/__init__.py")):
        modules += [f"{package.parent.name}/"] + [p.name for p in package.parent.glob("*.py")]
    for door in ("gradio_app", "hotfolder", "plugin"):
        modules += [f"{door}/"] + [p.name for p in sorted((ROOT / door).glob("*.py"))]
    missing = [m for m in modules if f"`{m}`" not in page and m != "__init__.py"]
    assert not missing, f"docs/architecture.md does not name {missing}"


def quoted_tables(markdown: str):
    """(results file, table rows) for each table that follows a link to benchmarks/results/*.md
    in the same paragraph or the one before it."""
    out, source = [], None
    for block in re.split(r"\n\s*\n", markdown):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows and source:
            out.append((source, [r for r in rows if not re.match(r"^\|[-| :]+\|$", r)][1:]))
        found = re.findall(r"\((benchmarks/results/[^)#\s]+\.md)\)", block)
        source = found[-1] if found else (source if rows else None)
    return out


def figures(row: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", row))


def test_figures_quoted_from_a_results_file_are_in_it():
    """A table quoted under a link to a results file holds that file's own figures (every number
    of a quoted row is in the file, as written there; a page may rename, merge or drop columns
    and rows), so rerunning a benchmark cannot leave a page quoting numbers the file no longer
    has."""
    checked = 0
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for source, rows in quoted_tables(page.read_text()):
            have = figures((ROOT / source).read_text())
            for row in rows:
                missing = figures(row) - have
                assert not missing, f"{page.name}: {row!r}: {sorted(missing)} not in {source}"
                checked += 1
    assert checked >= 10, f"only {checked} quoted rows found: is the check still finding them?"
