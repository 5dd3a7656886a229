"""The README as a guide and the deep dives it links to (docs/*.md): short, and every link lands somewhere.

The Comfy Registry shows the README on the pack's page, where a relative link resolves to nothing, so the README
links images and files by absolute URL into this repository's main branch; those URLs are checked against this
checkout's files (and headings, for an #anchor). The docs are read on GitHub, so they link relatively."""

import re
import urllib.parse
from pathlib import Path

import pytest

from tstitch_dev.host import PACK_ROOT

README = PACK_ROOT / "README.md"
DOCS = sorted((PACK_ROOT / "docs").glob("*.md"))
REPOSITORY = re.search(r'^Repository = "([^"]+)"', (PACK_ROOT / "pyproject.toml").read_text(), re.M).group(1)
_, OWNER_AND_NAME = REPOSITORY.split("https://github.com/")
# what GitHub serves a file of the main branch at: the page, and the raw bytes (what an <img> needs)
REPOSITORY_FILES = (f"https://github.com/{OWNER_AND_NAME}/blob/main/",
                    f"https://raw.githubusercontent.com/{OWNER_AND_NAME}/main/")
MAX_README_LINES = 300

LINK = re.compile(r"(!?)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def links(text: str) -> list[tuple[bool, str]]:
    """(is an image, target) of every Markdown link outside code blocks."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [(bang == "!", target) for bang, target in LINK.findall(text)]


def anchors(path: Path) -> set[str]:
    """The #anchors GitHub makes of a Markdown file's headings."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    made = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        made.add(slug)
    return made


def resolve(target: str, base: Path) -> tuple[Path, str]:
    """The local file and #anchor a link target points at (an absolute URL into this repository, or relative)."""
    for prefix in REPOSITORY_FILES:
        if target.startswith(prefix):
            target = target.removeprefix(prefix)
            base = PACK_ROOT
            break
    file, _, anchor = target.partition("#")
    return (base / urllib.parse.unquote(file)).resolve() if file else None, anchor


def test_the_readme_is_a_guide_of_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move a deep dive to docs/"


def test_the_readme_links_only_what_the_registry_page_can_show():
    text = README.read_text(encoding="utf-8")
    local_anchors = anchors(README)
    for is_image, target in links(text):
        if target.startswith("#"):
            assert target[1:] in local_anchors, f"README links #{target[1:]}, a heading it does not have"
            continue
        assert target.startswith("https://"), f"README links {target}: relative, broken on the registry's page"
        if is_image:
            assert target.startswith(REPOSITORY_FILES[1]) or not target.startswith(REPOSITORY_FILES[0]), \
                f"README shows {target}: a GitHub page, not the image"


@pytest.mark.parametrize("path", [README] + DOCS, ids=lambda path: path.name)
def test_every_link_into_the_repository_names_a_file_and_heading_it_has(path):
    for _, target in links(path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")) and not target.startswith(REPOSITORY_FILES):
            continue  # elsewhere: not ours to check offline
        file, anchor = resolve(target, path.parent)
        file = file or path
        assert file.exists(), f"{path.name} links {target}: no such file in the repository"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{path.name} links {target}: {file.name} has no such heading"


def test_every_deep_dive_is_linked_from_the_readme():
    linked = {resolve(target, PACK_ROOT)[0] for _, target in links(README.read_text(encoding="utf-8"))}
    assert {path.resolve() for path in DOCS} <= linked, "a docs/ page no reader can reach from the README"
