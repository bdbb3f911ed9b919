"""Sphinx configuration: Markdown guides (MyST) and an API reference from the docstrings.

Build (what ``.ci/run`` does; warnings, including broken references, are errors)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from sessions_client import __version__  # noqa: E402

project = "sessions_client"
author = "sessions_client contributors"
copyright = "sessions_client contributors"  # noqa: A001
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown: "#section" links between guides resolve to headings up to level 3.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The docstrings are reStructuredText with Sphinx roles; type hints are shown in
# the description, not in the signature, so long signatures stay readable.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The pytest plugin's page shows its module docstring; the docs extra needs no pytest.
autodoc_mock_imports = ["pytest"]

# References that cannot resolve without fetching other projects' inventories
# (the build works offline): the standard library, requests and typing helpers.
nitpick_ignore_regex = [
    ("py:class", r"(requests|sqlite3|socket|threading|http|os|pathlib|datetime|typing)\..*"),
    ("py:class", r"(Any|Callable|Dict|List|Optional|Tuple|Union|Iterator|Generator|Iterable)"),
    ("py:class", r"(int|str|bytes|float|bool|dict|list|tuple|object|None|type)"),
    ("py:class", r"(Exception|TimeoutError|ValueError|TypeError|BaseException)"),
    ("py:class", r"(Record|TimeoutType|Cursor|PathLike|Mapping|Sequence|Iterable)"),
    ("py:func", r"time\..*"),
    ("py:.*", r"_.*"),
    ("py:.*", r".*\._.*"),
    # Internal helpers the public docstrings mention by name.
    ("py:class", r"(sessions_client\.http\.)?Transport"),
    ("py:func", r"encode_record"),
    ("py:data", r"DEFAULT_MANAGEMENT_RETRY"),
    ("py:class", r"sessions_client\.testing\.faults\.(Failure|StreamPlan)"),
    # Private helpers and type aliases that appear in signatures.
    ("py:class", r"(ChatPosition|PingInterval)"),
]

html_theme = "alabaster"
html_title = f"sessions_client {release}"
html_theme_options = {"description": "Synchronous Python client for Trigger.dev Sessions"}
