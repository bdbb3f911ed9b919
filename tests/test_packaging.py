"""The distributions: ``python -m build`` makes an sdist and a wheel that ``twine check``
accepts, the wheel ships the package (with ``py.typed`` and ``testing/``) and no tests,
and the version is defined once.

The build runs without isolation (``--no-isolation``) on a copy of the source tree, so it
needs no network: setuptools and wheel come from the dev extra. The fresh-venv check of
the wheel needs PyPI for requests and sseclient-py and lives in ``scripts/check_wheel.sh``.
"""

from __future__ import annotations

import configparser
import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FILES = ["setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md"]
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".mypy_cache", "*.db*"
)


def _missing_tools() -> List[str]:
    return [name for name in ("build", "twine", "wheel") if importlib.util.find_spec(name) is None]


def _version() -> str:
    text = (ROOT / "sessions_client" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "sessions_client/_version.py must define __version__ = '...'"
    return match.group(1)


def _run_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory of this test run, shared by its xdist workers (their base temporary
    directories are siblings), made on first use."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The sdist and wheel, built once per test run (the first worker to ask builds them
    while the others wait on the lock)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[dev]')")
    work = _run_dir(tmp_path_factory, "packaging")
    out = work / "dist"
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (work / "built").exists():
            _build(work / "src", out)
            (work / "built").touch()
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _build(src: Path, out: Path) -> None:
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir()
    for name in SOURCE_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "sessions_client", src / "sessions_client", ignore=IGNORED)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel"]
        + ["--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=240,
    )


def test_version_is_defined_once_in_version_module() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert cfg["metadata"]["version"].strip() == "attr: sessions_client._version.__version__"
    version = _version()
    for path in ["setup.py", "pyproject.toml", "sessions_client/__init__.py"]:
        assert version not in (ROOT / path).read_text(encoding="utf-8"), path


def test_twine_check_accepts_sdist_and_wheel(dists: Dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["sdist"])]
        + [str(dists["wheel"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_ships_the_package_without_tests(dists: Dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = whl.namelist()
    assert "sessions_client/py.typed" in names
    assert "sessions_client/__init__.py" in names
    assert "sessions_client/cli.py" in names
    assert "sessions_client/testing/__init__.py" in names
    assert "sessions_client/testing/pytest_plugin.py" in names
    top_level = {name.split("/", 1)[0] for name in names}
    assert {n for n in top_level if not n.endswith(".dist-info")} == {"sessions_client"}
    assert not [n for n in names if n.startswith(("tests/", "examples/")) or "/tests/" in n]


def test_wheel_metadata_matches_setup_cfg(dists: Dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        info = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(whl.read(info).decode("utf-8"))
        entry = next(n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = whl.read(entry).decode("utf-8")
    assert meta["Name"].replace("-", "_") == "sessions_client"
    assert meta["Version"] == _version()
    assert meta["Requires-Python"] == ">=3.8"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "sessions_client" in (meta.get_payload() or "")  # the README is the description
    requires = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert sorted(re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in requires) == [
        "requests",
        "sseclient-py",
    ]
    assert "sessions-client = sessions_client.cli:main" in entry_points
    assert "pytest11" not in entry_points  # the pytest plugin is opt-in


def test_sdist_builds_the_same_version_and_carries_the_readme(dists: Dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = sdist.getnames()
    prefix = names[0].split("/", 1)[0]
    assert prefix.endswith(_version())
    for name in ["README.md", "LICENSE", "setup.cfg", "sessions_client/py.typed"]:
        assert f"{prefix}/{name}" in names, name


def test_check_wheel_script_is_executable_bash() -> None:
    script = ROOT / "scripts" / "check_wheel.sh"
    assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash")
    assert os.access(script, os.X_OK)
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
