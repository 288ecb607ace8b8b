"""docs/coreml-evaluator.md lists exactly the ops the evaluator registers, and names as missing only
ops it does not register."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "coreml-evaluator.md"
BEGIN, END = "<!-- BEGIN op list -->", "<!-- END op list -->"


def op_table() -> str:
    """The generated part of the doc, from the registry."""
    from deploykit.runners.coreml_eval import ops

    registered = ops.registered()
    rows = [f"| `{name}` | {registered[name].family} |" for name in sorted(registered)]
    return "\n".join([f"{len(rows)} op types:", "", "| op | module |", "| --- | --- |", *rows])


def _section(text: str) -> str:
    assert BEGIN in text and END in text, f"{DOC} lacks the {BEGIN} / {END} markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_doc_lists_every_registered_op():
    documented = _section(DOC.read_text())
    expected = op_table()
    assert documented == expected, (
        f"{DOC.name} and ops.registered() differ; replace the text between the markers with:\n\n{expected}\n")


def test_ops_named_as_missing_are_not_registered():
    from deploykit.runners.coreml_eval import ops

    text = DOC.read_text()
    paragraph = text.split("MIL ops it has no implementation for", 1)[1].split("\n\n", 1)[0]
    missing = re.findall(r"`([a-z_0-9]+)`", paragraph)
    assert len(missing) > 10
    assert sorted(set(missing) & set(ops.registered())) == []
