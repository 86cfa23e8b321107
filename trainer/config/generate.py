"""Regenerate every committed file made from the option definitions (utils/options.py):

    python -m trainer.config.generate           # write docs/config.schema.json and the
                                                # key tables of docs/config.md
    python -m trainer.config.generate --check   # exit 1 naming the stale files; write nothing

The tables sit in docs/config.md between `<!-- options:SECTION -->` and
`<!-- /options:SECTION -->` markers; the text around them is the page's own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from trainer.config.json_schema import schema_text
from utils.files import write_atomic
from utils.options import ABSENT, REQUIRED, TABLES, Option

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = "docs/config.schema.json"
DOCS_FILE = "docs/config.md"
SECTIONS = {"top-level": "", "trainer": "trainer.", "data_loader": "data_loader.args.",
            "lr_scheduler": "lr_scheduler.", "sweep": "sweep."}  # marker -> TABLES key
MARKERS = re.compile(r"(<!-- options:([\w-]+) -->\n)(.*?)(<!-- /options:\2 -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(option: Option) -> str:
    if option.default is REQUIRED:
        return "required"
    if option.default is ABSENT:
        return "(none)"
    return f"`{json.dumps(option.default)}`"


def table(prefix: str) -> str:
    """The markdown table of one section's keys: key, default, description."""
    rows = ["| key | default | description |", "|---|---|---|"]
    rows += [f"| `{prefix}{key}` | {_default(o)} | {_cell(o.doc)} |"
             for key, o in TABLES[prefix].items()]
    return "\n".join(rows) + "\n"


def docs_text(text: str) -> str:
    """docs/config.md's text with every marked table regenerated."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in SECTIONS:
            raise SystemExit(f"error: {DOCS_FILE}: unknown table '{m.group(2)}' (known: "
                             f"{', '.join(SECTIONS)})")
        return m.group(1) + table(SECTIONS[m.group(2)]) + m.group(4)
    return MARKERS.sub(fill, text)


def generated(root: Path = ROOT) -> dict[str, str]:
    """{path relative to the repository: the text it should hold} (a project made by
    new_project.py has no docs/config.md)."""
    texts = {SCHEMA_FILE: schema_text()}
    if (root / DOCS_FILE).is_file():
        texts[DOCS_FILE] = docs_text((root / DOCS_FILE).read_text(encoding="utf-8"))
    return texts


def stale(root: Path = ROOT) -> list[str]:
    """The generated files whose committed text differs from what they should hold."""
    return [rel for rel, text in generated(root).items()
            if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.config.generate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 naming the stale files instead of writing them")
    args = parser.parse_args(argv)
    old = stale()  # the checkout this module is in
    if args.check:
        for rel in old:
            print(f"stale: {rel} (regenerate: python -m trainer.config.generate)",
                  file=sys.stderr)
        return 1 if old else 0
    texts = generated()
    for rel in old:
        write_atomic(texts[rel], ROOT / rel, durable=False)
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
