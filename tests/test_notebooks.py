"""The notebook pipeline: jupytext pairs in sync, clean saved outputs, badges and set-up cells
derived from repo_url, a real NBVAL_CHECK_OUTPUT cell per notebook, and nbval really comparing."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import notebook_links  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_jupytext_pair_in_sync(ipynb):
    py = ipynb.with_suffix(".py")
    assert py.is_file(), f"{ipynb.name} has no paired {py.name}"
    # The pairing is configured once, in jupytext.toml
    assert 'formats = "ipynb,py:percent"' in (ROOT / "jupytext.toml").read_text()
    nb = jupytext.read(ipynb)
    # The header's jupytext_version names the tool that last wrote the pair, not content: a new
    # jupytext release must not make an unchanged pair look out of sync
    def content(text):
        return re.sub(r"(?m)^#\s+jupytext_version: .*\n", "", text)

    assert content(jupytext.writes(nb, fmt="py:percent")) == content(py.read_text()), (
        f"{ipynb.name} and {py.name} differ: run `jupytext --sync {py.relative_to(ROOT)}`"
    )


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_are_from_a_real_clean_run(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "not every code cell was executed"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"], "saved error output"
    # No progress bars or warnings in saved outputs
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], "saved stderr output"
    assert not any("\r" in o.get("text", "") for o in outputs), "carriage returns (a progress bar?)"
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    # Figures as PNG, and at least one of them
    assert any("image/png" in o.get("data", {}) for o in outputs), "no PNG figure"
    assert ipynb.stat().st_size < 2_000_000, "saved outputs too large"
    # Saved at cpu scale or larger: the live experiment's provenance line says which.
    text = json.dumps([o.get("text", "") for o in outputs])
    assert "scale=smoke" not in text, "outputs saved from a smoke run"
    assert "scale=cpu" in text or "scale=gpu" in text


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parity_cell_is_checked(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "no cell tagged # NBVAL_CHECK_OUTPUT"
    for c in checked:
        assert c.outputs, "a checked cell with no saved output compares nothing"
    # Every parity line says True
    parity = "".join(o.get("text", "") for c in checked for o in c.outputs)
    assert "False" not in parity


def test_badges_and_setup_cells_follow_repo_url():
    assert notebook_links.repo_url() == "https://github.com/labnorm/labnorm"
    assert notebook_links.problems() == []


def test_badge_check_notices_a_stale_url(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook_links, "repo_url", lambda: "https://github.com/someone/fork")
    assert notebook_links.problems(), "a changed repo_url must make the check fail"


def test_nbval_really_compares_checked_outputs(tmp_path):
    """A notebook whose saved output differs from what it prints must fail under nbval."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(6 * 7)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="41\n")]
    cell.execution_count = 1
    nb.cells = [cell]
    path = tmp_path / "wrong.ipynb"
    nbformat.write(nb, path)
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", str(path)], capture_output=True, text=True, cwd=tmp_path,
    )
    bad = run()
    assert bad.returncode == 1 and "1 failed" in bad.stdout
    cell.outputs[0]["text"] = "42\n"
    nbformat.write(nb, path)
    assert run().returncode == 0
