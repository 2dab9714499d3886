"""The notebooks run as scripts (``python notebooks/NAME.py``) and write their figures.

Each notebook asserts its own numerical claims (counts, slopes, predicted eigenvalues),
so running it is the test. They run in a subprocess, as a user runs them: with XLA's
full optimisation (unlike this suite, see conftest.py) and figures sent to a temporary
folder through ``EBMFLOW_NOTEBOOK_OUT``. Each takes 15-35 s on 2 cores, mostly compilation.
"""

import os
import re
import subprocess
import sys
from glob import glob
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(glob(str(ROOT / "notebooks" / "*.py")))


@pytest.mark.parametrize("path", [pytest.param(p, id=Path(p).stem) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    text = Path(path).read_text()
    assert text.startswith("# ---\n# jupyter:") and "format_name: percent" in text  # jupytext percent header
    assert "\n# %% [markdown]\n" in text and "\n# %%\n" in text

    env = dict(os.environ, EBMFLOW_NOTEBOOK_OUT=str(tmp_path), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not re.search(r"\w+Warning: ", done.stderr), done.stderr[-3000:]  # Python warnings, e.g. RuntimeWarning
    figures = list(tmp_path.glob("*.png"))
    assert [f.stem for f in figures] == [Path(path).stem]
    assert figures[0].stat().st_size > 10_000


def test_notebooks_are_listed():
    assert {Path(p).stem for p in NOTEBOOKS} >= {"hierarchy", "neutral_directions", "w0_saddle", "rbm_couplings"}
