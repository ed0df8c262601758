from pathlib import Path

import pytest
from ase.io import read

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM = FIXTURES / "upstream"


@pytest.fixture(scope="session")
def structures():
    """The 7 parity structures (see tests/fixtures/make_structures.py)."""
    return read(FIXTURES / "structures.extxyz", ":")
