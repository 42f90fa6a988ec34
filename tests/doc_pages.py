"""Reading the project's markdown pages: fenced code blocks, links, and GitHub's heading anchors."""

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def code_blocks(page: Path) -> list[dict]:
    """The fenced code blocks of a markdown page: language, the rest of the fence line, first line number, code."""
    blocks, current = [], None
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        match = FENCE.match(line)
        if current is None:
            if match:
                indent, fence, language, info = match.groups()
                current = {"indent": indent, "fence": fence, "language": language.lower(), "info": info.strip(),
                           "line": number, "lines": []}  # fmt: skip
        elif match and match.group(2).startswith(current["fence"]) and not match.group(3):
            current["code"] = "\n".join(line[len(current["indent"]) :] for line in current.pop("lines")) + "\n"
            blocks.append(current)
            current = None
        else:
            current["lines"].append(line)
    if current is not None:
        raise AssertionError(f"{page.name}:{current['line']}: code block never closed")
    return blocks


def pages() -> list[Path]:
    """README.md and every page of docs/, those added later included."""
    return [README, *sorted((REPOSITORY / "docs").glob("*.md"))]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors, seen = set(), {}
    in_code = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def links(page: Path) -> list[str]:
    text = page.read_text()
    for block in code_blocks(page):  # links inside code are not links
        text = text.replace(block["code"], "")
    return LINK.findall(text)
