"""The README's Python example runs as printed and says what its comments say; its API table names real things."""

import contextlib
import inspect
import io
import re
from pathlib import Path

import ebmflow

README = Path(__file__).resolve().parent.parent / "README.md"


# about 15 s: a flow to t1 = 1e6 and a dense stability analysis
def test_readme_python_example():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 16  # the issue asks for about 15 lines
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {})
    text = printed.getvalue()
    assert "data-consistent" in text, text
    assert "63 stable, 27 neutral, 0 unstable" in text, text


def test_readme_api_table_names_exist():
    """Every name in "What is in the box" resolves in ebmflow (or is an argument of a public function)."""
    text = README.read_text()
    table = text[text.index("## What is in the box") :]
    table = table[: table.index("\n#", 5)]
    namespaces = [ebmflow, ebmflow.targets, ebmflow.analysis, ebmflow.AbstractEnergy, ebmflow.FlowSolution]
    arguments = {name for obj in vars(ebmflow).values() if inspect.isfunction(obj)
                 for name in inspect.signature(obj).parameters}

    def resolves(path):
        for obj in namespaces:
            for part in path.split("."):
                obj = getattr(obj, part, None)
            if obj is not None:
                return True
        return path in arguments

    names = []
    for token in re.findall(r"`([^`]+)`", table):
        # API-like tokens: `name`, `ef.a.b`, `f(args)`; maths and file suffixes are not
        match = re.fullmatch(r"(?:ef\.)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(.*\))?", token, re.ASCII)
        if match:
            names.append(match.group(1))
    assert len(names) > 50
    assert [name for name in names if not resolves(name)] == []
