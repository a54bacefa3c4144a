"""Importing the study layer stays light: mmdet and optuna-dashboard load only when a run needs
them (the dashboard is an optional extra)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import paploss.reproduce
import paploss.study


def test_study_modules_import_neither_mmdet_nor_the_dashboard() -> None:
    names = sorted(
        m.name
        for package in (paploss.study, paploss.reproduce)
        for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not m.name.endswith(".__main__")  # runs its command
    )
    assert {"paploss.study.search.command", "paploss.study.train"} <= set(names)
    assert {"paploss.study.search.objective", "paploss.study.runner.warm"} <= set(names)
    assert {"paploss.reproduce.command", "paploss.reproduce.report"} <= set(names)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('mmdet', 'optuna_dashboard', 'mmengine') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
