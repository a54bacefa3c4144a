"""The OptunaHub package ``contrib/optunahub/samplers/ppo2``: its registry layout, loading it with
``optunahub.load_local_module`` in a process that never imports paploss, and its example's search
improving a toy objective; and its copy of the PPO2 mathematics agreeing with paploss's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "contrib" / "optunahub"
PACKAGE = REGISTRY / "samplers" / "ppo2"

# Run in a fresh interpreter: load the package as OptunaHub does, run the example's search and
# report what it found (and whether anything imported paploss).
_RUN_EXAMPLE = """
import importlib.util, json, sys
import numpy as np
import optuna, optunahub
optuna.logging.set_verbosity(optuna.logging.WARNING)
module = optunahub.load_local_module(package="samplers/ppo2", registry_root=sys.argv[1])
spec = importlib.util.spec_from_file_location("ppo2_example", sys.argv[2])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
study = example.run(module, seed=int(sys.argv[3]), rounds=8, samples_per_round=8)
sampler = study.sampler
space = example.SEARCH_SPACE
names = sampler.param_names
def unit(name, value):
    d = space[name]
    if d.log:
        return (np.log(value) - np.log(d.low)) / (np.log(d.high) - np.log(d.low))
    return (value - d.low) / (d.high - d.low)
target = [unit(n, example.OPTIMUM[n]) for n in names]
print(json.dumps({
    "rounds": {str(k): v for k, v in example.round_values(study).items()},
    "means": [[sampler.round_mean(study, t)[n] for n in names] for t in range(sampler.rounds + 1)],
    "target": target,
    "finished": sampler.is_finished(study),
    "module": module.__name__,
    "sampler_class": type(sampler).__module__,
    "paploss_imported": any(m == "paploss" or m.startswith("paploss.") for m in sys.modules),
}))
"""


def test_layout_and_registry_header() -> None:
    for name in ("__init__.py", "README.md", "LICENSE", "example.py"):
        assert (PACKAGE / name).is_file(), name
    assert (PACKAGE / "LICENSE").read_text().startswith("MIT License")
    readme = (PACKAGE / "README.md").read_text()
    header = re.match(r"---\n(.*?)\n---\n", readme, re.S)
    assert header, "README.md must start with the registry's front matter"
    fields = dict(line.split(": ", 1) for line in header.group(1).splitlines())
    assert set(fields) == {"author", "title", "description", "tags", "optuna_versions", "license"}
    assert fields["license"] == "MIT License"
    assert "sampler" in fields["tags"]  # required for a package under samplers/
    import optuna

    assert optuna.__version__ in fields["optuna_versions"]
    for section in ("## Abstract", "## Class or Function Names", "## Installation", "## Example"):
        assert section in readme, section


def test_package_never_imports_paploss() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+paploss", text, re.M), path.name


@pytest.mark.parametrize("seed", [0, 1])
def test_loaded_with_optunahub_the_example_improves_on_its_first_round(
    tmp_path: Path, seed: int
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RUN_EXAMPLE, str(REGISTRY), str(PACKAGE / "example.py"), str(seed)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["paploss_imported"] is False
    assert result["module"] == "optunahub_registry.package.samplers.ppo2"
    assert result["sampler_class"].startswith("optunahub_registry.package.samplers.ppo2")
    assert result["finished"]
    rounds = result["rounds"]
    assert sorted(rounds) == [str(t) for t in range(8)]
    assert all(len(values) == 8 for values in rounds.values())
    first, last = np.mean(rounds["0"]), np.mean(rounds["7"])
    # The objective (minimized) of the last round's samples is well below the first round's.
    assert last < 0.5 * first, (first, last)
    # The sampling mean moved towards the optimum (distance in the unit cube).
    target = np.array(result["target"])
    distances = [float(np.linalg.norm(np.array(m) - target)) for m in result["means"]]
    assert distances[-1] < distances[0] - 0.1, distances


def test_example_runs_as_a_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(PACKAGE / "example.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"round {t}" for t in range(10)]
    assert lines[-1].startswith("best value ")


def test_copied_mathematics_agrees_with_paploss() -> None:
    """The package's update and schedules equal paploss's (a copy that must not drift)."""
    import optunahub

    from paploss.samplers._ppo2 import _update as ours

    hub = optunahub.load_local_module(package="samplers/ppo2", registry_root=str(REGISTRY))
    rng = np.random.default_rng(0)
    for _ in range(5):
        samples = rng.uniform(0, 1, size=(6, 4))
        rewards = rng.normal(size=6)
        mean = rng.uniform(0.05, 0.95, size=4)
        expected = ours.ppo2_update(samples, rewards, mean, 0.2, 0.15)
        np.testing.assert_array_equal(hub.ppo2_update(samples, rewards, mean, 0.2, 0.15), expected)
    for t in range(6):
        assert hub.sigma_schedule(t, sigma_init=0.3, rounds=5) == ours.sigma_schedule(
            t, sigma_init=0.3, rounds=5
        )


def test_the_package_holds_paplosss_modules_byte_for_byte() -> None:
    """The OptunaHub folder's sampler modules are the copies scripts/sync_optunahub.py makes."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "sync_optunahub.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
