"""Quasi-harmonic thermodynamics with phonopy's ``PhonopyQHA``: phonons at several volumes, then the Gibbs energy
minimised over volume at each temperature (thermal expansion, bulk modulus and heat capacity at constant pressure)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from phonopy import PhonopyQHA
from tqdm import tqdm

from ..errors import ConvergenceWarning, InvalidArgumentError
from .calc import as_floats, check_numbers, get_calculator, output_folder, write_csv
from .eos import volume_scan
from .phonons import DEFAULT_TEMPERATURES, phonons, supercell_matrix
from .relax import relax
from .results import QHAResult, space_group

logger = logging.getLogger(__name__)

#: eV/Å: the ions of each scaled cell are relaxed (at fixed cell, keeping the symmetry) to this
ION_FMAX = 1e-3
#: phonopy's EOS forms
QHA_EOS = ("vinet", "birch_murnaghan", "murnaghan")


def qha(
    atoms: Atoms,
    volume_range: float = 0.05,
    points: int = 7,
    temperatures: Sequence[float] | np.ndarray = DEFAULT_TEMPERATURES,
    supercell: float | Sequence[int] | Sequence[Sequence[int]] = 10.0,
    mesh: float | Sequence[int] = 100.0,
    eos_name: str = "vinet",
    pressure_GPa: float = 0.0,
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "qha_output",
    progress: bool = True,
) -> QHAResult:
    """Quasi-harmonic approximation: harmonic phonons of ``atoms`` at ``points`` volumes over
    ``V0 * (1 ± volume_range)``, phonopy's ``PhonopyQHA`` minimising E(V) + F_vib(V, T) + PV over V at each
    temperature.

    Each volume is ``atoms`` scaled isotropically (its shape kept: exact for cubic crystals, a fixed-shape
    approximation for others), its ions relaxed at fixed cell with the symmetry kept (to 1e-3 eV/Å), then
    :func:`~alignn_ase.workflows.phonons` with the same supercell matrix at every volume (all displaced supercells
    of one volume in one batched evaluation).

    Args:
        atoms: 3D periodic structure, relaxed first (cell included); not modified.
        volume_range: half-width of the volume range as a fraction (0.005 to 0.5; 0.05 = ±5 %); the free-energy minimum must stay
            inside it up to the highest temperature, or the results stop at the temperature where it leaves.
        points: number of volumes (5 to 1000).
        temperatures: K, evenly spaced from 0 (phonopy differentiates along them); the results end one step
            before the last.
        supercell: as :func:`~alignn_ase.workflows.phonons`, resolved once at the central volume.
        mesh: q-point mesh of the thermal properties, as :func:`~alignn_ase.workflows.phonons`.
        eos_name: phonopy's EOS form fitted at each temperature: ``"vinet"``, ``"birch_murnaghan"`` or
            ``"murnaghan"``.
        pressure_GPa: external pressure, GPa (the Gibbs energy includes PV).
        calculator: ASE calculator; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``qha.csv`` (every temperature's results), ``e_v.csv`` (the volumes' energies and
            free energies) and ``qha.png``; None writes nothing.
        progress: show a tqdm progress bar over the volumes.

    Returns a :class:`~alignn_ase.workflows.results.QHAResult`: per temperature the equilibrium volume (Å³/atom),
    volumetric thermal expansion (1/K), isothermal bulk modulus (GPa), heat capacity at constant pressure
    (J/K per mole of atoms), Gibbs energy (eV/atom) and average Grüneisen parameter. Imaginary modes at any volume
    are warned about (their free energy is not meaningful).
    """
    if eos_name not in QHA_EOS:
        raise InvalidArgumentError(f"unknown EOS {eos_name!r}; use one of {QHA_EOS}")
    scaled_cells = volume_scan(atoms, volume_range, points, "qha")
    check_numbers(pressure_GPa=pressure_GPa)
    if not np.isfinite(pressure_GPa):
        raise InvalidArgumentError(f"pressure_GPa must be finite, got {pressure_GPa}")
    temps = as_floats("temperatures", temperatures)
    if temps.ndim != 1 or len(temps) < 3 or not np.isfinite(temps).all() or temps[0] != 0 or temps[1] <= 0 or \
            not np.allclose(np.diff(temps), temps[1]):
        # phonopy's derivatives along T put 0 in the first row, right only at 0 K
        raise InvalidArgumentError("temperatures must be at least three evenly spaced, increasing values from 0 K")
    calc = get_calculator(atoms, calculator)
    out = output_folder(output_dir)
    matrix = supercell_matrix(atoms, supercell)
    group = space_group(atoms)
    if group is None or int(group.split("(")[-1].rstrip(")")) < 195:  # "Fm-3m (225)": the cubic groups are 195-230
        logger.warning("the cell is scaled isotropically: for a non-cubic crystal its shape (c/a, angles) stays that "
                       "of the input at every volume")
    # the central volume first: a q-mesh given as a length is resolved there and kept at every volume (phonopy's
    # length would give each volume its own mesh, a step in F(V))
    middle = len(scaled_cells) // 2
    order = [middle, *(i for i in range(len(scaled_cells)) if i != middle)]
    volumes, energies, results = [0.0] * len(order), [0.0] * len(order), [None] * len(order)
    for i in tqdm(order, desc="qha volumes", unit="volume", disable=not progress, leave=False):
        scaled = scaled_cells[i]
        scaled.set_constraint()
        factor = scaled.get_volume() / atoms.get_volume()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # judged below, by the relaxed forces
            relaxed = relax(scaled, fmax=ION_FMAX, relax_cell=False, calculator=calc, progress=False,
                            fix_symmetry=True)
        if not np.isfinite(relaxed.energy) or not np.isfinite(relaxed.max_force):
            raise InvalidArgumentError(f"the calculator gives a non-finite energy or forces at {100 * factor:.1f} % of "
                                       "the volume")
        if relaxed.max_force > 10 * ION_FMAX:
            logger.warning("ions at %.1f %% of the volume relaxed only to %.2g eV/Å", 100 * factor, relaxed.max_force)
        ph = phonons(relaxed.atoms, supercell=matrix, mesh=mesh, temperatures=temps, calculator=calc,
                     output_dir=None, progress=False)
        mesh = ph.phonopy.mesh.mesh_numbers.tolist()
        if ph.imaginary_modes:
            logger.warning("imaginary modes at %.1f %% of the volume (lowest %.2f THz): the free energy there "
                           "leaves them out", 100 * factor, ph.imaginary_modes[0][0])
        volumes[i], energies[i], results[i] = relaxed.atoms.get_volume(), relaxed.energy, ph
    # phonopy's thermal properties are per mole of primitive cells: E and V go per primitive cell too
    atoms_per_cell = results[0].atoms_per_cell
    per_cell = atoms_per_cell / len(atoms)
    free_energy = np.array([r.free_energy for r in results])  # kJ/mol of primitive cells, volumes x temperatures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy warns about its own deprecated names
        try:
            q = PhonopyQHA(
                volumes=np.array(volumes) * per_cell,
                electronic_energies=np.array(energies) * per_cell,
                temperatures=temps,
                free_energy=free_energy.T,
                cv=np.array([r.heat_capacity for r in results]).T,
                entropy=np.array([r.entropy for r in results]).T,
                pressure=float(pressure_GPa),
                eos=eos_name,
            )
        except RuntimeError as exc:  # phonopy: "Met difficulty in fitting to EOS."
            raise InvalidArgumentError(f"phonopy's {eos_name} fit of F(V) failed ({exc}): is the structure relaxed at "
                                       "this pressure, and the temperatures within reason?") from None
    sampled = np.array(volumes) / len(atoms)
    volume = np.asarray(q.volume_temperature[: len(q.thermal_expansion)]) / atoms_per_cell
    outside = np.flatnonzero((volume < sampled.min()) | (volume > sampled.max()))
    # rows up to the last whose central differences along T read volumes inside the sampled range (phonopy's fits
    # extrapolate beyond it)
    n = int(outside[0]) - 1 if len(outside) else len(volume)
    if n < 2:
        when = "at 0 K (zero-point expansion included)" if outside[0] == 0 else f"by {temps[outside[0]]:g} K"
        raise InvalidArgumentError(
            f"the equilibrium volume leaves the sampled {sampled.min():.3f}-{sampled.max():.3f} Å³/atom {when}: "
            "widen volume_range, or relax the structure first (at this pressure)"
        )
    result = QHAResult(
        temperatures=temps[:n],
        volume=volume[:n],
        thermal_expansion=np.asarray(q.thermal_expansion[:n]),
        bulk_modulus=np.asarray(q.bulk_modulus_temperature[:n]),
        heat_capacity_p=np.asarray(q.heat_capacity_P_numerical[:n]) / atoms_per_cell,
        gibbs_energy=np.asarray(q.gibbs_temperature[:n]) / atoms_per_cell,
        gruneisen=np.concatenate([[np.nan], q.gruneisen_temperature[1:n]]),  # phonopy's 0 at 0 K stands for 0/0
        volumes=sampled,
        energies=np.array(energies) / len(atoms),
        free_energies=free_energy * (units.kJ / units.mol) / atoms_per_cell,
        pressure_GPa=float(pressure_GPa),
        eos_name=eos_name,
        phonopy_qha=q,
    )
    if n < len(volume):
        warnings.warn(
            f"the equilibrium volume leaves the sampled {sampled.min():.3f}-{sampled.max():.3f} Å³/atom above "
            f"{result.temperatures[-1]:g} K: the results stop there (widen volume_range)", ConvergenceWarning,
            stacklevel=2,
        )
    if out is not None:
        result.files = _write(result, out)
    return result


def _write(result: QHAResult, out: Path) -> dict[str, Path]:
    files = {"data": out / "qha.csv", "energy_volume": out / "e_v.csv", "plot": out / "qha.png"}
    write_csv(files["data"], ["temperature_K", "volume_A3_per_atom", "thermal_expansion_per_K", "bulk_modulus_GPa",
                              "heat_capacity_p_J_per_K_per_mol_atoms", "gibbs_energy_eV_per_atom", "gruneisen"],
              [result.temperatures, result.volume, result.thermal_expansion, result.bulk_modulus,
               result.heat_capacity_p, result.gibbs_energy, result.gruneisen])
    write_csv(files["energy_volume"], ["volume_A3_per_atom", "energy_eV_per_atom"], [result.volumes, result.energies])
    result.plot(files["plot"])
    return files
