"""Demo: relax, MD and phonons of silicon with alignn-ase's default potential.

    python examples/demo.py [--out demo_output]

Uses ASE's optimisers and integrators and phonopy's API directly, with
``ALIGNNCalculator()`` as the only alignn-ase piece. Writes
``relax.png``, ``md.png``, ``phonons.png`` and ``summary.json`` to ``--out``.

The default potential is currently an UNTRAINED placeholder (see its model
card, ``potentials/smooth-untrained-v0/MODEL_CARD.md``): the demo shows the
machinery working end to end, not silicon's physics.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.filters import FrechetCellFilter  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary  # noqa: E402
from ase.optimize import FIRE  # noqa: E402
from phonopy import Phonopy  # noqa: E402
from phonopy.structure.atoms import PhonopyAtoms  # noqa: E402
from tqdm import tqdm  # noqa: E402

from alignn_ase import ALIGNNCalculator  # noqa: E402


def relax(calc, out: Path) -> dict:
    atoms = bulk("Si", "diamond", a=5.6, cubic=True)
    atoms.rattle(0.05, seed=0)
    atoms.calc = calc
    energies = []
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    opt.attach(lambda: energies.append(atoms.get_potential_energy() / len(atoms)))
    converged = opt.run(fmax=0.02, steps=300)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(energies)
    ax.set(xlabel="FIRE step", ylabel="energy (eV/atom)", title="Si relaxation (cell + positions)")
    fig.tight_layout()
    fig.savefig(out / "relax.png", dpi=120)
    plt.close(fig)
    a = float(np.cbrt(atoms.get_volume()))
    return {"converged": bool(converged), "steps": opt.nsteps, "lattice_constant_A": a, "atoms": atoms}


def md(calc, relaxed, out: Path, steps: int = 300) -> dict:
    atoms = relaxed.repeat((2, 2, 2))
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = Langevin(atoms, timestep=1.0 * units.fs, temperature_K=300, friction=0.02 / units.fs, fixcm=False, rng=np.random.default_rng(1))
    rows = []
    for _ in tqdm(range(steps), desc="MD (Langevin, 300 K)"):
        dyn.run(1)
        rows.append((dyn.get_time() / units.fs, atoms.get_potential_energy(), atoms.get_kinetic_energy(), atoms.get_temperature()))
    t, epot, ekin, temp = np.array(rows).T
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(t, epot + ekin, label="total")
    axes[0].plot(t, epot, label="potential")
    axes[0].set(xlabel="time (fs)", ylabel="energy (eV)")
    axes[0].legend()
    axes[1].plot(t, temp)
    axes[1].set(xlabel="time (fs)", ylabel="temperature (K)")
    fig.tight_layout()
    fig.savefig(out / "md.png", dpi=120)
    plt.close(fig)
    return {"steps": steps, "mean_temperature_K_last_half": float(temp[steps // 2 :].mean())}


def phonons(calc, relaxed, out: Path) -> dict:
    prim = bulk("Si", "diamond", a=float(np.cbrt(relaxed.get_volume())))
    unit = PhonopyAtoms(symbols=prim.get_chemical_symbols(), cell=prim.cell.array, scaled_positions=prim.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([3, 3, 3]), primitive_matrix="auto")
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.symmetrize_force_constants()
    ph.auto_band_structure()
    ph.run_mesh([16, 16, 16], is_gamma_center=True)
    ph.run_total_dos()
    fig = ph.plot_band_structure_and_dos()
    fig.savefig(out / "phonons.png", dpi=120)
    plt.close("all")
    ph.run_qpoints([[0, 0, 0]])
    gamma = ph.qpoints.frequencies[0]
    return {"gamma_frequencies_THz": [float(f) for f in gamma]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    calc = ALIGNNCalculator()
    logging.info("model card:\n%s", calc.model.card)
    r = relax(calc, args.out)
    relaxed = r.pop("atoms")
    summary = {"relax": r, "md": md(calc, relaxed, args.out), "phonons": phonons(calc, relaxed, args.out)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logging.info("%s", json.dumps(summary, indent=2))
    logging.info("figures and summary written to %s/", args.out)


if __name__ == "__main__":
    main()
