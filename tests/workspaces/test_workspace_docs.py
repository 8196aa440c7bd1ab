"""The agent example in docs/workspaces.md runs as written and prints what the page says it prints."""

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "workspaces.md"


def test_docs_agent_example_runs_and_matches_its_printed_output():
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: agent -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/workspaces.md lost its '<!-- example: agent -->' code block"
    code = match.group(1)
    expected = [line[2:] for line in code.splitlines() if line.startswith("# ('")]
    assert len(expected) == 3
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})  # our own documentation code
    assert printed.getvalue().splitlines() == expected
