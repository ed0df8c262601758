"""The validation protocol shared by ``validate_potential.py`` (our model, /work/venv) and
``validate_teacher.py`` (the distillation teacher, /work/upvenv).

Plain ASE only (no alignn_ase import), so that exactly the same code measures the
student and the teacher in their two environments. References:

- ``ase.collections.dcdft``: WIEN2k (all-electron PBE) V0 (Å³/atom), B0 (GPa) and B′ of
  the elemental solids of the Delta-codes project, in their dcdft structures.
- ``ase.data.reference_states``: ASE's (mostly experimental, room-temperature) lattice
  constants of the elemental solids in fcc, bcc, diamond and hcp reference states.
- Si phonons, experiment (inelastic neutron scattering): Γ optical ≈ 15.5 THz, X TA ≈ 4.5 THz.
- Cubic elastic constants C11, C12, C44 (GPa) of six elemental crystals at room temperature, experiment
  as tabulated by Kittel (*Introduction to Solid State Physics*, 8th ed., ch. 3; sources differ by ~1-2 %);
  the distillation teacher is the reference for the other cubic crystals of :data:`ELASTIC_CRYSTALS`.

Method (both sides):

- dcdft EOS, the Delta-codes protocol behind the WIEN2k numbers: the dcdft structure as given (the
  Delta project's reference cell, within a few % of the WIEN2k V0: up to +3.3 % for O), scaled
  uniformly (cell shape and fractional coordinates fixed) to ``POINTS`` volumes over ±6 %, Birch–Murnaghan fit with ``ase.eos`` -> V0 (Å³/atom),
  B0 (GPa), B′. Nothing is relaxed: a model's own c/a or internal coordinates would otherwise
  enter its "V0 vs WIEN2k";
- relaxation (lattice constants, Si): FIRE on ``FrechetCellFilter`` (cell) with ``FixSymmetry``
  (the space group of the starting structure is kept), ``FMAX`` eV/Å, at most ``CELL_STEPS`` steps;
- reference-state lattice constants: the ``ase.build.bulk`` cell of the reference state,
  relaxed -> conventional a (Å) and, for hcp, c (Å) and c/a; the MAE runs over every lattice
  parameter (a, and c for hcp).
- elastic constants: the conventional cubic cell relaxed as above (to ``ELASTIC_FMAX``), then strained by ±``ELASTIC_STRAIN``
  (xx, and the engineering shear yz), the ions relaxed at fixed cell (FIRE, ``ELASTIC_FMAX``, no symmetry constraint; this gives
  diamond's and zinc blende's internal relaxation under shear), and C11 = dσxx/dεxx,
  C12 = dσyy/dεxx, C44 = dσyz/dγyz by central differences of the stress (ASE's sign: positive = tensile).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from ase.collections import dcdft
from ase.constraints import FixSymmetry
from ase.data import atomic_numbers, reference_states
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from tqdm import tqdm

RESULTS = Path(__file__).resolve().parent / "results"
FMAX = 0.005  # eV/Å (and eV for the cell's generalised forces)
CELL_STEPS = 200
VOLUME_RANGE = 0.06
POINTS = 7  # the Delta-codes protocol: 94 % to 106 % of the reference volume in 2 % steps
FLAT_EOS_EV = 1e-5  # eV/atom
#: van der Waals-bound crystals (molecular and noble-gas): neither PBE nor a short-ranged potential describes
#: them; the tables give a second MAE without them
MOLECULAR_CRYSTALS = frozenset("H N O F Cl Br I He Ne Ar Kr Xe Rn".split())
#: structures whose lattice constant is measured, and the atoms per conventional cubic cell
CUBIC_ATOMS_PER_CELL = {"fcc": 4, "bcc": 2, "diamond": 8}
LATTICE_STRUCTURES = (*CUBIC_ATOMS_PER_CELL, "hcp")
#: Si phonons, experiment (THz): Γ optical (Raman, 15.5) and X-point transverse acoustic (4.5).
SI_PHONONS_EXPERIMENT_THZ = {"gamma_optical": 15.5, "x_ta": 4.5}
SI_PHONON_SUPERCELL = (4, 4, 4)  # of the 2-atom primitive cell: 128 atoms, faces >= 10 Å apart
SI_PHONON_DISPLACEMENT = 0.01  # Å
QUICK_ELEMENTS = ("Si", "Cu", "Al")
ELASTIC_STRAIN = 0.005
ELASTIC_FMAX = 1e-4  # eV/Å: diamond's C44 moves by ~20 % between 0.005 and 0.001 (its ions relax under shear)
#: cubic crystals whose elastic constants are measured: ase.build.bulk arguments (conventional cubic cell)
ELASTIC_CRYSTALS: dict[str, dict[str, Any]] = {
    "Si": {"name": "Si", "crystalstructure": "diamond", "a": 5.43},
    "C": {"name": "C", "crystalstructure": "diamond", "a": 3.567},
    "Ge": {"name": "Ge", "crystalstructure": "diamond", "a": 5.66},
    "Al": {"name": "Al", "crystalstructure": "fcc", "a": 4.05},
    "Cu": {"name": "Cu", "crystalstructure": "fcc", "a": 3.61},
    "Ni": {"name": "Ni", "crystalstructure": "fcc", "a": 3.52},
    "Ag": {"name": "Ag", "crystalstructure": "fcc", "a": 4.09},
    "Pt": {"name": "Pt", "crystalstructure": "fcc", "a": 3.92},
    "W": {"name": "W", "crystalstructure": "bcc", "a": 3.165},
    "Mo": {"name": "Mo", "crystalstructure": "bcc", "a": 3.147},
    "V": {"name": "V", "crystalstructure": "bcc", "a": 3.03},
    "NaCl": {"name": "NaCl", "crystalstructure": "rocksalt", "a": 5.64},
    "MgO": {"name": "MgO", "crystalstructure": "rocksalt", "a": 4.21},
    "LiF": {"name": "LiF", "crystalstructure": "rocksalt", "a": 4.03},
    "GaAs": {"name": "GaAs", "crystalstructure": "zincblende", "a": 5.65},
}
#: room-temperature experiment (GPa), Kittel's tables (see the module docstring)
ELASTIC_EXPERIMENT_GPA = {
    "Si": {"C11": 166.0, "C12": 63.9, "C44": 79.6},
    "C": {"C11": 1076.0, "C12": 125.0, "C44": 576.0},
    "Al": {"C11": 106.8, "C12": 60.7, "C44": 28.2},
    "Cu": {"C11": 168.4, "C12": 121.4, "C44": 75.4},
    "Ni": {"C11": 250.8, "C12": 150.0, "C44": 123.5},
    "W": {"C11": 523.3, "C12": 204.5, "C44": 160.7},
}
ELASTIC_KEYS = ("C11", "C12", "C44")

log = logging.getLogger("validation")


def pct(value: float, reference: float) -> float:
    """Signed relative error, %."""
    return 100.0 * (value - reference) / reference


def dcdft_elements(supported: Iterable[str]) -> list[str]:
    """The dcdft elements (in the collection's order) that are in ``supported``."""
    keep = set(supported)
    return [s for s in dcdft.names if s in keep]


def lattice_elements(supported: Iterable[str]) -> list[str]:
    """Elements in ``supported`` whose ASE reference state is fcc, bcc, diamond or hcp, by atomic number.

    Se and Te, listed as "hcp" with a helical basis that ``ase.build.bulk`` cannot build, are left out.
    """
    keep = set(supported)
    out = []
    for symbol in sorted(keep, key=lambda s: atomic_numbers[s]):
        state = reference_states[atomic_numbers[symbol]]
        if state and state.get("symmetry") in LATTICE_STRUCTURES and "basis" not in state:
            out.append(symbol)
    return out


def relax(atoms: Atoms, calc: BaseCalculator, cell: bool = True, steps: int = CELL_STEPS, fmax: float = FMAX,
          keep_symmetry: bool = True) -> dict[str, Any]:
    """Relax ``atoms`` in place (positions, and the cell if ``cell``) to ``fmax`` (eV/Å), keeping its symmetry
    (``FixSymmetry``) unless ``keep_symmetry`` is False.

    Returns ``{"converged", "steps", "max_force_eV_per_A"}``.
    """
    atoms.calc = calc
    if keep_symmetry:
        atoms.set_constraint(FixSymmetry(atoms))
    target = FrechetCellFilter(atoms) if cell else atoms
    opt = FIRE(target, logfile=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converged = bool(opt.run(fmax=fmax, steps=steps))
    forces = atoms.get_forces()
    return {
        "converged": converged,
        "steps": int(opt.nsteps),
        "max_force_eV_per_A": float(np.linalg.norm(forces, axis=1).max()),
    }


def scaled_copy(atoms: Atoms, factor: float) -> Atoms:
    """A copy of ``atoms`` (no constraints, no calculator) with its volume times ``factor``, atoms scaled along."""
    scaled = atoms.copy()
    scaled.set_constraint()
    scaled.set_cell(atoms.cell.array * np.cbrt(factor), scale_atoms=True)
    return scaled


def eos_scan(atoms: Atoms, calc: BaseCalculator) -> dict[str, Any]:
    """Birch–Murnaghan V0 (Å³/atom), E0 (eV/atom), B0 (GPa) and B′ from a ±6 %, ``POINTS``-point scan
    of ``atoms`` scaled uniformly (shape and fractional coordinates fixed)."""
    n = len(atoms)
    volumes, energies = [], []
    for factor in np.linspace(1 - VOLUME_RANGE, 1 + VOLUME_RANGE, POINTS):
        scaled = scaled_copy(atoms, factor)
        scaled.calc = calc
        volumes.append(scaled.get_volume() / n)
        energies.append(scaled.get_potential_energy() / n)
    fit = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b0 = fit.fit(warn=False)
    if not np.isfinite([v0, e0, b0]).all():
        raise ValueError(f"Birch-Murnaghan fit failed (V0={v0}, B0={b0})")
    return {
        "V0": float(v0),
        "E0": float(e0),
        "B0": float(b0 / units.GPa),
        "Bp": float(fit.eos_parameters[2]),
        "V0_in_scan": bool(min(volumes) <= v0 <= max(volumes)),
        "volumes_A3_per_atom": [float(v) for v in volumes],
        "energies_eV_per_atom": [float(e) for e in energies],
    }


def dcdft_eos(symbol: str, calc: BaseCalculator) -> dict[str, Any]:
    """The EOS of the dcdft structure of ``symbol`` by the Delta protocol (see module docstring), compared
    with WIEN2k (errors in %)."""
    atoms = dcdft[symbol]
    atoms.set_initial_magnetic_moments(None)
    out = eos_scan(atoms, calc)
    ref = dcdft.data[symbol]
    out.update(
        V0_err_pct=pct(out["V0"], ref["wien2k_volume"]),
        B0_err_pct=pct(out["B0"], ref["wien2k_B"]),
        Bp_err=out["Bp"] - ref["wien2k_Bp"],
    )
    return out


def eos_usable(entry: dict[str, Any]) -> bool:
    """Whether a dcdft entry has a fit worth reporting: it succeeded and E(V) is not flat.

    E(V) is flat (spread < ``FLAT_EOS_EV`` eV/atom over ±6 %) when no neighbour is within the
    potential's cut-off (e.g. bcc Cs, nearest neighbours 5.3 Å apart, under a 5 Å cut-off).
    """
    return "V0" in entry and float(np.ptp(entry["energies_eV_per_atom"])) > FLAT_EOS_EV


def dcdft_reference(symbol: str) -> dict[str, float]:
    """WIEN2k V0 (Å³/atom), B0 (GPa), B′ of ``symbol`` from ``ase.collections.dcdft``."""
    ref = dcdft.data[symbol]
    return {"V0": ref["wien2k_volume"], "B0": ref["wien2k_B"], "Bp": ref["wien2k_Bp"]}


def lattice_reference(symbol: str) -> dict[str, Any]:
    """ASE's reference state of ``symbol``: structure, a (Å) and c/a (hcp)."""
    state = reference_states[atomic_numbers[symbol]]
    ref = {"structure": state["symmetry"], "a": float(state["a"])}
    if state["symmetry"] == "hcp":
        ref["c/a"] = float(state["c/a"])
        ref["c"] = ref["a"] * ref["c/a"]
    return ref


def energy_is_flat(atoms: Atoms, calc: BaseCalculator) -> bool:
    """Whether the energy per atom of ``atoms`` changes by less than ``FLAT_EOS_EV`` (eV/atom) between
    -6 % and +6 % of its volume: no neighbour within the potential's cut-off, so nothing to relax."""
    energies = []
    for factor in (1 - VOLUME_RANGE, 1 + VOLUME_RANGE):
        scaled = scaled_copy(atoms, factor)
        scaled.calc = calc
        energies.append(scaled.get_potential_energy() / len(scaled))
    return abs(energies[1] - energies[0]) < FLAT_EOS_EV


def lattice_errors(entry: dict[str, Any]) -> list[float]:
    """The signed errors (%) of every lattice parameter of an entry: a, and c for hcp (c's error from a's and
    c/a's for entries written before c was recorded)."""
    errors = [entry["a_err_pct"]]
    if "c/a_err_pct" in entry:
        c_err = entry.get("c_err_pct")
        if c_err is None:
            c_err = 100.0 * ((1 + entry["a_err_pct"] / 100) * (1 + entry["c/a_err_pct"] / 100) - 1)
        errors.append(c_err)
    return errors


def lattice_mae(entries: Iterable[dict[str, Any]]) -> float | None:
    """Mean absolute error (%) over every lattice parameter (a, and c for hcp) of ``entries``; None if none."""
    errors = [abs(e) for entry in entries for e in lattice_errors(entry)]
    return float(np.mean(errors)) if errors else None


def lattice_usable(entry: dict[str, Any]) -> bool:
    """Whether a lattice-constant entry is a result: it succeeded and the energy was not flat (entries written
    before the flatness check have no ``flat_E``: there a relaxation that took no step at zero force marks it)."""
    if "flat_E" not in entry and entry.get("relax", {}).get("steps") == 0:
        return entry["relax"].get("max_force_eV_per_A") != 0.0
    return "a" in entry and not entry.get("flat_E", False)


def lattice_constant(symbol: str, calc: BaseCalculator) -> dict[str, Any]:
    """Relaxed conventional a (Å) (and c/a for hcp) of ``symbol`` in its ASE reference state;
    ``flat_E`` marks a cell whose energy does not depend on the volume (:func:`energy_is_flat`), whose
    "relaxed" a is just the starting value and is left out of the MAE."""
    ref = lattice_reference(symbol)
    atoms = bulk(symbol)
    relaxation = relax(atoms, calc)
    if ref["structure"] == "hcp":
        lengths = atoms.cell.lengths()
        out = {"a": float(lengths[0]), "c": float(lengths[2]), "c/a": float(lengths[2] / lengths[0])}
        out["c/a_err_pct"] = pct(out["c/a"], ref["c/a"])
        out["c_err_pct"] = pct(out["c"], ref["c"])
    else:
        per_cell = CUBIC_ATOMS_PER_CELL[ref["structure"]]
        out = {"a": float(np.cbrt(atoms.get_volume() / len(atoms) * per_cell))}
    out.update(relax=relaxation, a_err_pct=pct(out["a"], ref["a"]), flat_E=energy_is_flat(atoms, calc))
    return out


def elastic_crystals(supported: Iterable[str]) -> list[str]:
    """The crystals of :data:`ELASTIC_CRYSTALS` whose elements are all in ``supported``."""
    keep = set(supported)
    return [name for name in ELASTIC_CRYSTALS if set(Atoms(name).get_chemical_symbols()) <= keep]


def elastic_constants(name: str, calc: BaseCalculator) -> dict[str, Any]:
    """C11, C12, C44 and the bulk modulus (C11 + 2 C12) / 3 (GPa) of the cubic crystal ``name`` of
    :data:`ELASTIC_CRYSTALS` (method in the module docstring); errors (%) vs experiment where tabulated."""
    atoms = bulk(cubic=True, **ELASTIC_CRYSTALS[name])
    relaxation = relax(atoms, calc, fmax=ELASTIC_FMAX)
    atoms.set_constraint()
    cell = atoms.cell.array.copy()
    converged = []

    def stress(strain: np.ndarray) -> np.ndarray:
        # no FixSymmetry here: at a 0.5 % strain spglib's tolerance can still find the cubic group, and the
        # constraint would then average the stress over it (a shear stress to zero)
        strained = atoms.copy()
        strained.set_cell(cell @ (np.eye(3) + strain), scale_atoms=True)
        converged.append(relax(strained, calc, cell=False, fmax=ELASTIC_FMAX, keep_symmetry=False)["converged"])
        return strained.get_stress(voigt=False) / units.GPa

    d = ELASTIC_STRAIN
    normal, shear = np.zeros((3, 3)), np.zeros((3, 3))
    normal[0, 0] = d
    shear[1, 2] = shear[2, 1] = d / 2  # engineering shear strain gamma_yz = d
    dn = (stress(normal) - stress(-normal)) / (2 * d)
    ds = (stress(shear) - stress(-shear)) / (2 * d)
    out = {"a": float(np.cbrt(atoms.get_volume())), "C11": float(dn[0, 0]), "C12": float(0.5 * (dn[1, 1] + dn[2, 2])),
           "C44": float(ds[1, 2]), "relax": relaxation, "strained_ions_converged": all(converged)}
    out["B"] = (out["C11"] + 2 * out["C12"]) / 3
    for key, ref in ELASTIC_EXPERIMENT_GPA.get(name, {}).items():
        out[f"{key}_err_pct"] = pct(out[key], ref)
    return out


def si_primitive(a: float = 5.431) -> Atoms:
    """Primitive (2-atom) diamond Si with conventional lattice constant ``a`` (Å)."""
    return bulk("Si", "diamond", a=a)


def fcc_x_point(primitive: Atoms) -> np.ndarray:
    """Reduced coordinates of X = (0, 2π/a, 0) in the reciprocal basis of an fcc-lattice primitive cell.

    For ASE's ``bulk`` primitive cells this is (0.5, 0, 0.5).
    """
    a = np.cbrt(4.0 * primitive.get_volume())
    return primitive.cell.array @ np.array([0.0, 1.0 / a, 0.0])


def si_phonon_summary(gamma_thz: np.ndarray, x_thz: np.ndarray, a: float) -> dict[str, Any]:
    """Γ optical (highest Γ mode) and X TA (lowest X mode) frequencies in THz vs experiment."""
    gamma_thz, x_thz = np.sort(gamma_thz), np.sort(x_thz)
    out = {
        "a": float(a),
        "gamma_THz": [float(f) for f in gamma_thz],
        "x_THz": [float(f) for f in x_thz],
        "gamma_optical": float(gamma_thz[-1]),
        "x_ta": float(x_thz[0]),
    }
    for key, ref in SI_PHONONS_EXPERIMENT_THZ.items():
        out[f"{key}_err_pct"] = pct(out[key], ref)
    return out


def survey(
    items: Iterable[str],
    measure: Callable[[str], dict[str, Any]],
    desc: str,
    store: dict[str, Any],
    on_update: Callable[[], None],
) -> None:
    """``store[item] = measure(item)`` for each item with a progress bar; a failure is stored as
    ``{"error": ...}`` and the survey goes on. ``on_update`` runs after every item (partial results)."""
    for item in tqdm(list(items), desc=desc, unit="item"):
        t0 = time.perf_counter()
        try:
            store[item] = measure(item)
        except Exception as exc:  # noqa: BLE001 - one bad element must not stop the benchmark
            log.warning("%s %s failed: %s", desc, item, exc)
            log.debug("%s", traceback.format_exc())
            store[item] = {"error": f"{type(exc).__name__}: {exc}".strip()[:300]}
        # a measurement that times itself (an MD run: its steps only) keeps its wall_s; the whole item's time apart
        store[item]["wall_total_s"] = time.perf_counter() - t0
        store[item].setdefault("wall_s", store[item]["wall_total_s"])
        on_update()


def mae(values: Iterable[dict[str, Any]], key: str) -> float | None:
    """Mean |value[key]| over the entries that have it (None if none do)."""
    errors = [abs(v[key]) for v in values if key in v and v[key] is not None and np.isfinite(v[key])]
    return float(np.mean(errors)) if errors else None


def command_line() -> str:
    """How this process was started: interpreter, arguments, and ``nice -n N`` when it runs niced."""
    niceness = os.nice(0)
    return (f"nice -n {niceness} " if niceness else "") + f"{sys.executable} " + " ".join(sys.argv)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (atomically: a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)
