"""`make serve`'s promise: a fresh clone serves the whole site with the docs toolchain alone — no torch.

A fresh virtualenv gets `requirements-docs.txt` only, then builds the site strictly from a copy of the
tracked files (a fresh clone) with the installed `node_modules`. Slow (it downloads the toolchain), so
it runs only when LABNORM_TEST_DOCS_ONLY=1; the rendered pages it relies on are checked on every run by
`tests/test_site_generators.py::test_rendered_pages_are_up_to_date`."""

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(os.environ.get("LABNORM_TEST_DOCS_ONLY") != "1",
                                reason="set LABNORM_TEST_DOCS_ONLY=1 to build the site in a fresh docs-only venv")


def test_fresh_clone_builds_the_site_without_torch(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    # The working tree's docs toolchain files and rendered pages, committed or not
    for path in ["requirements-docs.txt", "mkdocs.yml", "scripts", "docs"]:
        src, dst = ROOT / path, clone / path
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    (clone / "node_modules").symlink_to(ROOT / "node_modules")
    start = time.monotonic()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", "requirements-docs.txt"], cwd=clone, check=True)
    installed = time.monotonic() - start
    assert subprocess.run([py, "-c", "import torch"], capture_output=True).returncode != 0, "torch came along"
    subprocess.run([py, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=clone,
                   check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    built = time.monotonic() - start
    print(f"docs-only venv: installed in {installed:.0f} s, site built at {built:.0f} s", file=sys.stderr)
    site = tmp_path / "site"
    for page in ["results/index.html", "claims/index.html", "api/index.html", "notebooks/01_batch_and_group_norm/index.html",
                 "source/batch_norm/index.html"]:
        assert (site / page).is_file(), page
    assert "BatchNorm2d" in (site / "api" / "index.html").read_text()
    assert list((site / "results").glob("*.png"))
