#!/usr/bin/env python3
"""Writes the first fenced code block under a heading of a Markdown page to a file, so the
build compiles a doc's example exactly as the page shows it.

  extract_doc_example.py PAGE.md "Heading text" OUTPUT
"""
import pathlib
import sys


def extract(page: pathlib.Path, heading: str) -> str:
    lines = page.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.lstrip("#").strip() == heading and line.startswith("#")]
    if not starts:
        raise SystemExit(f"{page}: no heading '{heading}'")
    block = None
    for line in lines[starts[0] + 1:]:
        if block is None:
            if line.startswith("#"):
                break  # the next section: the heading has no example
            if line.startswith("```"):
                block = []
        elif line.startswith("```"):
            return "\n".join(block) + "\n"
        else:
            block.append(line)
    raise SystemExit(f"{page}: no complete ``` code block under heading '{heading}'")


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    page, heading, output = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
    output.write_text(extract(page, heading), encoding="utf-8")


if __name__ == "__main__":
    main()
