"""The shipped models are package data: a wheel holds them, and an installed wheel loads them from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from alignn_ase.potentials import DEFAULT, PROPERTY_MODELS

from .conftest import ROOT
MODEL_FILES = ("config.json", "model.safetensors", "MODEL_CARD.md")


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "-q", "--disable-pip-version-check"],
                   check=True, cwd=cwd)


def test_installed_wheel_loads_the_shipped_models_from_any_directory(tmp_path):
    # build from a copy, so the checkout gets no build/ or egg-info of the test's
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("alignn_ase", "potentials"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    _pip("wheel", str(src), "--no-build-isolation", "-w", str(tmp_path / "dist"), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("alignn_ase-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in (DEFAULT, *PROPERTY_MODELS.values()):
        for f in MODEL_FILES:
            assert f"alignn_ase/potentials/{model}/{f}" in names

    _pip("install", "--target", str(tmp_path / "site"), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import math, alignn_ase\n"
        "from ase.build import bulk\n"
        "from alignn_ase import ALIGNNCalculator\n"
        "atoms = bulk('Si', 'diamond', a=5.43)\n"
        "atoms.calc = ALIGNNCalculator(properties=['formation_energy_peratom'])\n"
        "e, p = atoms.get_potential_energy(), atoms.calc.get_property('formation_energy_peratom', atoms)\n"
        "assert math.isfinite(e) and math.isfinite(p)\n"
        "print(alignn_ase.__file__)\n"
        "print(atoms.calc.model.source)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=elsewhere, env=env, capture_output=True,
                         text=True).stdout.split()
    site = str(tmp_path / "site")
    assert out[0].startswith(site), out  # the installed copy, not the checkout
    assert out[1].startswith(site) and out[1].endswith(DEFAULT), out
