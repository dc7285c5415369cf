"""MkDocs hook: the site shows files that live outside docs/ without keeping copies of them.

README.md becomes the home page (its links into docs/ made relative to the site), and the
preset gallery's tiles and benchmarks/results/ (pages, pictures, plots) are added at their
repository paths, so a page links `benchmarks/results/quality-512.jpg` and the build copies the
file into site/.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("presets/gallery/*.png", *(f"benchmarks/results/*.{x}" for x in ("md", "jpg", "png")))


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "index.md", abs_src_path=str(ROOT / "README.md")))
    for pattern in OUTSIDE:
        for path in sorted(ROOT.glob(pattern)):
            src_uri = path.relative_to(ROOT).as_posix()
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "index.md":  # the README: its docs/x.md is the site's x.md
        markdown = markdown.replace("](docs/", "](")
    return markdown
