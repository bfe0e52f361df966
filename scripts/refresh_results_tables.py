"""Replaces the tables part of docs/RESULTS.md (from its "## The tables" line to the end)
with a bench folder's table.md and findings.md, so that the document's tables are the
ones `bench --report_only` wrote; the text above that line is left as it is.

  python scripts/refresh_results_tables.py [docs/RESULTS.md] [docs/results/default]
"""

import pathlib
import re
import sys

MARKER = "## The tables"


def main(doc: str = "docs/RESULTS.md", folder: str = "docs/results/default") -> None:
  doc_path, out = pathlib.Path(doc), pathlib.Path(folder)
  text = doc_path.read_text()
  if MARKER not in text:
    sys.exit(f"error: {doc} has no '{MARKER}' line: add it where the tables should start")
  findings = (out / "findings.md").read_text()
  findings = re.sub(r"^## ", "### ", findings, flags=re.M)  # one level below "The tables"
  head = text[:text.index(MARKER)]
  body = f"{MARKER}\n\n{(out / 'table.md').read_text().rstrip()}\n\n### How the findings are tested\n\n{findings.strip()}\n"
  doc_path.write_text(head + body)
  print(f"wrote the tables of {doc} from {out}/table.md and findings.md")


if __name__ == "__main__":
  main(*sys.argv[1:])
