"""Small shared helpers for the tests."""

import numpy as np
import torch
from ase import Atoms

from alignn_ase import ALIGNNCalculator
from alignn_ase.nn.smooth import SmoothALIGNN, SmoothConfig


def smooth_model(seed: int = 0, **overrides) -> SmoothALIGNN:
    """A small randomly initialised smooth model (float32 weights, like a loaded one)."""
    torch.manual_seed(seed)
    config = SmoothConfig(hidden_features=32, embedding_features=32, **overrides)
    model = SmoothALIGNN(config).eval()
    if config.angle_energy:  # its output layer starts at zero; random weights, so that a test sees the term
        torch.nn.init.normal_(model.angle_readout[2].weight, std=0.3)
    return model


def random_crystal(symbols: str = "Si2O3Na", seed: int = 0, a: float = 4.6) -> Atoms:
    """A random triclinic multi-element cell with no atoms closer than 1.3 Å."""
    rng = np.random.default_rng(seed)
    n = len(Atoms(symbols))
    cell = np.eye(3) * a + rng.normal(0.0, 0.35, (3, 3))
    while True:
        atoms = Atoms(symbols, scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)
        if n == 1 or atoms.get_all_distances(mic=True)[np.triu_indices(n, 1)].min() > 1.3:
            return atoms


def calc64(model=None) -> ALIGNNCalculator:
    """A float64 calculator of ``model`` (default: :func:`smooth_model`)."""
    return ALIGNNCalculator(model if model is not None else smooth_model(), dtype="float64", device="cpu")


def au_hop_on_al100() -> list[Atoms]:
    """ASE's NEB tutorial: an Au adatom hopping between hollow sites of Al(100), bottom layers fixed (EMT)."""
    from ase.build import add_adsorbate, fcc100
    from ase.calculators.emt import EMT
    from ase.constraints import FixAtoms

    from alignn_ase.workflows import relax

    slab = fcc100("Al", size=(2, 2, 3))
    add_adsorbate(slab, "Au", 1.7, "hollow")
    slab.center(axis=2, vacuum=4.0)
    slab.set_constraint(FixAtoms(mask=[a.tag > 1 for a in slab]))
    final = slab.copy()
    final[-1].x += slab.cell[0, 0] / 2
    return [relax(a, calculator=EMT(), relax_cell=False, fmax=0.01, progress=False).atoms for a in (slab, final)]
