"""paploss as an installable package: the bundled configs are package data that mmengine loads
(also through the checkout's ``studies/configs`` link), pyproject's package data covers every one,
the console scripts exist; and (slow) the built wheel, installed in a fresh virtual environment,
runs ``paploss-search`` outside the checkout with its own copy of the configs."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import paploss
from paploss.study.cli import CONFIG_DIR, DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(paploss.__file__).resolve().parent
SCRIPTS = {
    "paploss-search": "paploss.study.search.command:main",
    "paploss-train": "paploss.study.train:main",
    "paploss-split-coco": "paploss.study.split:main",
    "paploss-reproduce": "paploss.reproduce.command:main",
}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _config_files() -> set[str]:
    """Every file in the bundled configs folder, relative to the package."""
    return {
        p.relative_to(PACKAGE).as_posix()
        for p in CONFIG_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_configs_are_package_data_that_mmengine_loads_from_both_paths() -> None:
    from mmengine.config import Config

    assert CONFIG_DIR == PACKAGE / "configs" and DEFAULT_CONFIG.is_file()
    assert not list(CONFIG_DIR.rglob("__init__.py")), "configs are data, not modules"
    linked = ROOT / "studies" / "configs"
    assert linked.is_symlink() and linked.resolve() == CONFIG_DIR
    configs = sorted(CONFIG_DIR.glob("*.py"))
    assert len(configs) >= 11
    for path in configs:
        cfg = Config.fromfile(str(path))  # _base_ files resolve beside the file
        assert cfg.model and cfg.train_dataloader, path.name
        via_link = Config.fromfile(str(linked / path.name))
        assert via_link.to_dict() == cfg.to_dict(), path.name


def test_package_data_patterns_cover_every_config() -> None:
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["paploss"]
    covered = {
        Path(f).as_posix()
        for pattern in patterns
        for f in glob.glob(pattern, root_dir=PACKAGE, recursive=True)
    }
    files = _config_files()
    assert files and files <= covered, sorted(files - covered)


def test_console_scripts_name_existing_entry_points() -> None:
    import importlib

    assert _pyproject()["project"]["scripts"] == SCRIPTS
    for target in SCRIPTS.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name))
        source = Path(importlib.import_module(module).__file__).read_text()
        assert 'if __name__ == "__main__":\n    sys.exit(main())' in source, module


def test_no_module_reaches_outside_the_package() -> None:
    offenders = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "parents[2]" in p.read_text() or "REPO_ROOT" in p.read_text()
    ]
    assert offenders == []


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "paploss.study.split", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: paploss-split-coco")


# ------------------------------------------------------------------------------ the wheel
# Train at the tiny images' own 64 px: 4 iterations of 2 images (as in test_studies_e2e.py).
FAST = [
    "--device", "cpu",
    "--cfg-options",
    "train_dataloader.batch_size=2",
    "val_dataloader.batch_size=4",
    "test_dataloader.batch_size=4",
    "train_dataloader.dataset.pipeline.2.scale=(64,64)",
    "val_dataloader.dataset.pipeline.1.scale=(64,64)",
    "test_dataloader.dataset.pipeline.1.scale=(64,64)",
]  # fmt: skip


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the project (no build/ or egg-info left in the checkout)."""
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "paploss", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("paploss-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A new virtual environment whose site-packages appends this one's (torch, mmdet, optuna
    resolve there) through a .pth line: the .pth files of an appended folder are not processed,
    so this environment's editable paploss finder is not active there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "main_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, Path(site).resolve()


@pytest.mark.slow
def test_wheel_installs_and_runs_a_search_outside_the_checkout(tmp_path: Path) -> None:
    from paploss.proxy import generate_proxy_dataset

    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {f"paploss/{f}" for f in _config_files()} <= names
    assert not any(n.startswith("paploss/configs/") and n.endswith("__init__.py") for n in names)
    for script, target in SCRIPTS.items():
        assert f"{script} = {target}" in entry_points

    venv, site = _fresh_venv(tmp_path)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="1000")
    # pip of this environment, run by the new interpreter, installs into the new one;
    # --ignore-installed: the editable paploss seen through the .pth line is left alone.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--ignore-installed", str(wheel)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout
        )

    probe = run(
        str(python), "-c",
        "import paploss; from paploss.study.cli import DEFAULT_CONFIG; "
        "from paploss.study.runner.trial import child_env; "
        "print(paploss.__file__); print(DEFAULT_CONFIG); print(child_env('cpu').get('PYTHONPATH'))",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    module_file, default_config, child_path = probe.stdout.split()
    assert Path(module_file).resolve().is_relative_to(site)
    assert Path(default_config) == site / "paploss" / "configs" / "proxy_retinanet_paploss.py"
    assert Path(default_config).is_file()
    assert child_path == "None"  # the child imports the same (installed) paploss by default

    search = venv / "bin" / "paploss-search"
    assert search.is_file() and (venv / "bin" / "paploss-reproduce").is_file()
    helped = run(str(search), "--help")
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert helped.stdout.startswith("usage: paploss-search")
    assert f"(default: {default_config})" in helped.stdout

    data = tmp_path / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    url = f"sqlite:///{tmp_path / 'search.db'}"
    proc = run(
        str(search), "--storage", url, "--study-name", "pkg", "--rounds", "1",
        "--samples-per-round", "2", "--epochs", "1", "--data", str(data),
        "--work-dir", str(tmp_path / "wd"), *FAST,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    study = optuna.load_study(study_name="pkg", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert Path(study.user_attrs["config"]) == Path(default_config)
    assert study.user_attrs["command"].startswith("paploss-search --storage ")
    assert "Best trial" in proc.stdout
