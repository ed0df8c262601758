import os

# One thread per test process: on a shared 2-core machine torch/OpenBLAS thread pools fighting
# other jobs slow small evaluations 10-100x. Set before numpy/torch are imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path

import pytest
from ase.io import read

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM = FIXTURES / "upstream"


@pytest.fixture(scope="session")
def structures():
    """The 7 parity structures (see tests/fixtures/make_structures.py)."""
    return read(FIXTURES / "structures.extxyz", ":")
