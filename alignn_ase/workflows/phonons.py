"""Harmonic phonons through phonopy's Python API: finite displacements, force constants,
band structure, DOS, thermal properties, checks for imaginary modes, and the non-analytic correction of polar
crystals from given Born charges."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import seekpath
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from matplotlib.figure import Figure
from phonopy import Phonopy
from phonopy.file_IO import BORNFileParseError, parse_BORN
from phonopy.interface.calculator import get_calculator_physical_units
from phonopy.phonon.grid import length2mesh
from phonopy.structure.atoms import PhonopyAtoms
from phonopy.structure.cells import Primitive, PrimitiveMatrixAutoDefaultWarning, Supercell

from ..errors import InvalidArgumentError
from ..graph import is_3d_periodic
from .calc import (
    as_floats, calculate_many, check_numbers, check_positive, check_structure, get_calculator, output_folder,
)
from .results import PhononResult

logger = logging.getLogger(__name__)

DEFAULT_TEMPERATURES = np.arange(0.0, 1001.0, 10.0)
#: larger phonon supercells are refused (their displaced copies would not fit the memory of one evaluation batch)
MAX_SUPERCELL_ATOMS = 20_000
#: q-points of a mesh at most (a 100x100x100 mesh; phonopy would try to allocate any number)
MAX_MESH_POINTS = 1_000_000
#: e; Born effective charges are a few e (the largest measured, in polar perovskites, ~ 7-8)
MAX_BORN_CHARGE = 20.0
#: seekpath's point names written as TeX in the band plot's labels
GREEK_LABELS = {"GAMMA": r"\Gamma", "SIGMA": r"\Sigma", "DELTA": r"\Delta", "LAMBDA": r"\Lambda"}


def supercell_matrix(atoms: Atoms, supercell: float | Sequence[int] | Sequence[Sequence[int]]) -> np.ndarray:
    """The (3, 3) integer supercell matrix for ``supercell``.

    ``supercell`` is three repeats ``(n1, n2, n3)``, a full 3x3 integer matrix in
    phonopy's convention (its ``supercell_matrix``: the supercell's vectors are the
    columns of ``cell.T @ matrix``, the transpose of ASE's ``make_supercell`` P), or a
    single number: the minimum distance (Å) between opposite faces of the supercell,
    giving the smallest diagonal supercell at least that thick in every direction.
    """
    if np.ndim(supercell) == 0:
        check_numbers(supercell=supercell)
        if not 0 < float(supercell) < np.inf:
            raise InvalidArgumentError(
                f"the supercell's minimum thickness must be a finite, positive length (Å), got {supercell!r}"
            )
        heights = 1.0 / np.linalg.norm(atoms.cell.reciprocal(), axis=1)
        matrix = np.diag(np.maximum(1, np.ceil(float(supercell) / heights - 1e-9)))
    else:
        matrix = as_floats("supercell", supercell)
        if matrix.shape == (3,):
            matrix = np.diag(matrix)
        if (matrix.shape != (3, 3) or not np.isfinite(matrix).all() or not np.all(matrix == np.round(matrix))
                or round(np.linalg.det(matrix)) < 1):
            raise InvalidArgumentError(
                "supercell must be a length in Å, three positive integers or a 3x3 integer matrix with a positive "
                f"determinant; got {supercell!r}"
            )
    n_atoms = round(abs(np.linalg.det(matrix))) * len(atoms)
    if n_atoms > MAX_SUPERCELL_ATOMS:
        raise InvalidArgumentError(
            f"the supercell {matrix.astype(int).tolist()} would hold {n_atoms} atoms, more than {MAX_SUPERCELL_ATOMS}; "
            "phonons converge in supercells of ~10-20 Å"
        )
    return matrix.astype(int)


def check_mesh(mesh: float | Sequence[int]) -> None:
    """Raise :class:`~alignn_ase.errors.InvalidArgumentError` unless ``mesh`` is a positive length (phonopy's
    q-point density) or three positive integers; phonopy would quietly turn a length <= 0 into a Γ-only mesh."""
    if np.ndim(mesh) == 0:
        check_numbers(mesh=mesh)
    values = np.atleast_1d(as_floats("mesh", mesh))
    if (values.shape not in ((1,), (3,)) or not (np.isfinite(values).all() and (values > 0).all())
            or (values.shape == (3,) and not all(float(v).is_integer() for v in values))):
        raise InvalidArgumentError(f"mesh must be a positive length (Å) or three positive integers, got {mesh}")


def resolve_mesh(mesh: float | Sequence[int], primitive_cell: np.ndarray) -> np.ndarray:
    """The three q-point counts of a mesh checked by :func:`check_mesh` (a length: phonopy's ``length2mesh`` for the
    primitive cell); :class:`~alignn_ase.errors.InvalidArgumentError` above :data:`MAX_MESH_POINTS` points."""
    numbers = length2mesh(float(mesh), primitive_cell) if np.ndim(mesh) == 0 else np.asarray(mesh, dtype=int)
    if np.prod(numbers, dtype=float) > MAX_MESH_POINTS:
        raise InvalidArgumentError(f"the q-point mesh {numbers.tolist()} holds more than {MAX_MESH_POINTS} points "
                                   f"(mesh={mesh}); a length of 50-150 is typical")
    return numbers


def phonopy_unitcell(atoms: Atoms) -> PhonopyAtoms:
    """``atoms`` as phonopy's unit cell, with its masses. phonopy takes right-handed cells only: a left-handed one
    becomes the same lattice with its vectors reversed."""
    sign = -1.0 if np.linalg.det(atoms.cell.array) < 0 else 1.0
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=sign * atoms.cell.array,
                        scaled_positions=(sign * atoms.get_scaled_positions()) % 1.0, masses=atoms.get_masses())


def phonons(
    atoms: Atoms,
    supercell: float | Sequence[int] | Sequence[Sequence[int]] = 10.0,
    displacement: float = 0.01,
    mesh: float | Sequence[int] = 100.0,
    temperatures: Sequence[float] | np.ndarray = DEFAULT_TEMPERATURES,
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "phonons_output",
    primitive_matrix: str | Sequence[Sequence[float]] | None = "auto",
    symprec: float = 1e-5,
    acoustic_tolerance: float = 0.05,
    born: str | Path | Mapping[str, Any] | None = None,
    progress: bool = True,
) -> PhononResult:
    """Phonons of ``atoms`` (taken as phonopy's unit cell; relax it first) by finite displacements.

    Forces of every displaced supercell come from the calculator (minus the residual
    forces of the undisplaced supercell); the force constants get phonopy's
    translational (acoustic sum rule) and permutation symmetrisation.

    Args:
        atoms: the (relaxed) unit cell, 3D periodic. Its masses are used.
        supercell: ``(n1, n2, n3)``, a 3x3 integer matrix, or a minimum thickness in Å
            (see :func:`supercell_matrix`).
        displacement: atomic displacement, Å.
        mesh: q-point mesh for DOS and thermal properties: three integers, or phonopy's
            length (a number; larger = denser).
        temperatures: K, for the thermal properties.
        calculator: ASE calculator; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``phonopy_params.yaml``, ``band.yaml``, ``total_dos.dat``,
            ``thermal_properties.yaml``, ``phonons.png`` (bands beside DOS) and
            ``thermal_properties.png``; None writes nothing.
        primitive_matrix: phonopy's primitive matrix (``"auto"`` finds it by symmetry).
        symprec: symmetry tolerance, Å.
        acoustic_tolerance: THz; the acoustic frequencies at Γ of the force constants as the forces give them
            (before symmetrisation imposes the acoustic sum rule) must satisfy |ω| below it,
            and modes below ``-acoustic_tolerance`` elsewhere count as imaginary.
        born: for polar crystals, the Born effective charges (units of e) and the high-frequency dielectric
            tensor, which a potential does not give (take them from DFPT): phonopy's non-analytic correction
            then splits the LO from the TO modes near Γ in the bands, DOS and thermal properties (Γ itself,
            ``gamma_frequencies``, keeps the TO frequencies: its LO frequency depends on the direction of
            approach). Either the path of phonopy's ``BORN`` file (charges of the symmetry-independent atoms of
            phonopy's primitive cell; its first line the unit factor, as phonopy reads it) or a mapping with
            ``"born"``, one 3x3 tensor per atom of ``atoms`` (N, 3, 3), and ``"dielectric"`` (3, 3). None:
            no correction (no LO-TO splitting). Refused: charges beyond ±20 e, different tensors on atoms a
            lattice translation apart, a dielectric tensor that is not symmetric or has an eigenvalue below 1,
            a BORN file's header values that are not finite and positive.
        progress: show a tqdm bar while the displaced supercells are evaluated.

    Returns a :class:`~alignn_ase.workflows.results.PhononResult`: the ``Phonopy`` object
    (frequencies in THz), Γ frequencies (THz), imaginary modes, thermal properties
    (kJ and J/K per mole of primitive cells, phonopy's units) and the files written.
    """
    check_structure(atoms)
    if not is_3d_periodic(atoms):
        raise InvalidArgumentError("phonons need a 3D periodic cell")
    check_positive(displacement=displacement, symprec=symprec, acoustic_tolerance=acoustic_tolerance)
    if not 1e-3 <= displacement <= 0.1:
        logger.warning("a displacement of %g Å is outside 0.001-0.1 Å: forces at smaller ones are mostly float "
                       "rounding, at larger ones anharmonic (phonopy's default is 0.01 Å)", displacement)
    check_mesh(mesh)
    temps = as_floats("temperatures", temperatures)
    if temps.ndim != 1 or temps.size == 0 or not (np.isfinite(temps).all() and (temps >= 0).all()):
        raise InvalidArgumentError("temperatures must be a non-empty list of finite values >= 0 K")
    calc = get_calculator(atoms, calculator)
    out = output_folder(output_dir)
    with warnings.catch_warnings():  # "auto" is our documented choice, not phonopy's v3-compatibility default
        warnings.simplefilter("ignore", PrimitiveMatrixAutoDefaultWarning)
        ph = Phonopy(phonopy_unitcell(atoms), supercell_matrix(atoms, supercell), primitive_matrix=primitive_matrix,
                     symprec=symprec)
    logger.info("phonopy primitive matrix %s", ph.primitive_matrix.round(5).tolist())
    # checked before the forces
    nac = nac_params(ph.supercell, ph.primitive, born, len(atoms), symprec) if born is not None else None
    resolve_mesh(mesh, ph.primitive.cell)  # refuses a mesh too large before the forces
    ph.generate_displacements(distance=displacement)
    structures = [to_ase_atoms(ph.supercell)] + [to_ase_atoms(sc) for sc in ph.supercells_with_displacements]
    logger.info("phonons: %d displaced supercells of %d atoms", len(structures) - 1, len(ph.supercell))
    results = calculate_many(structures, calc, progress=progress)
    ph.forces = np.array([r["forces"] for r in results[1:]]) - results[0]["forces"]
    ph.produce_force_constants()
    # the acoustic check reads the force constants as the forces gave them: symmetrisation imposes the sum rule
    ph.run_qpoints([[0.0, 0.0, 0.0]])
    raw_gamma = ph.qpoints.frequencies[0]
    raw_acoustic = np.sort(raw_gamma[np.argsort(np.abs(raw_gamma))[:3]])
    ph.symmetrize_force_constants()
    if np.abs(ph.force_constants).max() < 1e-8:
        raise InvalidArgumentError(
            f"every force constant is zero: the supercell {ph.supercell_matrix.tolist()} is too small (an atom "
            "displaced with all its periodic images feels no force); use a larger supercell"
        )

    if nac is not None:
        ph.nac_params = nac
    _run_band_structure(ph, npoints=51, symprec=symprec)
    ph.run_mesh(mesh, is_gamma_center=True)
    ph.run_total_dos()
    ph.run_thermal_properties(temperatures=temperatures, exclude_gamma_acoustic=True)
    ph.run_qpoints([[0.0, 0.0, 0.0]])
    gamma = np.sort(ph.qpoints.frequencies[0])
    optical = gamma[np.argsort(np.abs(gamma))[3:]]  # the three closest to zero are the acoustic modes
    imaginary = _imaginary_modes(ph, acoustic_tolerance)
    if len(optical) and optical.min() < -acoustic_tolerance:
        imaginary.insert(0, (float(optical.min()), (0.0, 0.0, 0.0)))
        imaginary.sort()
    tp = ph.thermal_properties
    result = PhononResult(
        phonopy=ph,
        gamma_frequencies=gamma,
        acoustic_ok=bool(np.all(np.abs(raw_acoustic) < acoustic_tolerance)),
        acoustic_tolerance=acoustic_tolerance,
        imaginary_modes=imaginary,
        temperatures=np.asarray(tp.temperatures),
        free_energy=np.asarray(tp.free_energy),
        entropy=np.asarray(tp.entropy),
        heat_capacity=np.asarray(tp.heat_capacity),
        atoms_per_cell=len(ph.primitive),
    )
    if out is not None:
        result.files = _write(ph, out)
    if not result.acoustic_ok:
        logger.warning(
            "acoustic frequencies at Γ are %s THz before the force constants are symmetrised, not within ±%g THz "
            "(the forces break translational invariance)", raw_acoustic.round(4), acoustic_tolerance
        )
    if imaginary:
        f, q = imaginary[0]
        logger.warning("%d q-points with imaginary modes; lowest %.3f THz at q = %s", len(imaginary), f, np.round(q, 4))
    return result


def nac_params(
    supercell: Supercell, primitive: Primitive, born: str | Path | Mapping[str, Any], n_atoms: int, symprec: float
) -> dict[str, Any]:
    """phonopy's ``nac_params`` (Born charges of the atoms of ``primitive``, e; dielectric tensor) from a BORN file
    or a mapping with one charge tensor per input atom (see :func:`phonons`), checked; ``supercell`` and
    ``primitive``: phonopy's (or phono3py's harmonic) supercell and primitive cell of the ``n_atoms`` input atoms."""
    if isinstance(born, (str, Path)):
        if not Path(born).is_file():
            raise InvalidArgumentError(f"no such BORN file: {born}")
        try:
            params = dict(parse_BORN(primitive, symprec=symprec, filename=born))
        except (BORNFileParseError, ValueError) as exc:
            raise InvalidArgumentError(f"{born}: not a phonopy BORN file for this structure: {exc}") from None
        charges = np.asarray(params.pop("born"))
    elif isinstance(born, Mapping):
        if set(born) != {"born", "dielectric"}:
            raise InvalidArgumentError(f"born takes the keys 'born' and 'dielectric', got {sorted(born)}")
        per_atom = as_floats("born['born']", born["born"])
        if per_atom.shape != (n_atoms, 3, 3):
            raise InvalidArgumentError(f"born['born'] must hold one 3x3 tensor per atom, shape ({n_atoms}, 3, 3); "
                                       f"got {per_atom.shape}")
        # phonopy's primitive atoms -> the input atoms they stand for: an input atom per primitive one
        representative = [supercell.u2u_map[supercell.s2u_map[i]] for i in primitive.p2s_map]
        charges = per_atom[representative]
        # input atoms a lattice translation apart (a conventional cell's copies) must carry the same tensor
        image_of = [primitive.p2p_map[primitive.s2p_map[i]] for i in supercell.u2s_map]
        differ = np.abs(per_atom - charges[image_of]).max(axis=(1, 2)) > 1e-3
        if differ.any():
            k = int(np.flatnonzero(differ)[0])
            raise InvalidArgumentError(f"born['born']: atom {k} and its translation-equivalent atom "
                                       f"{representative[image_of[k]]} have different Born charge tensors")
        params = {"dielectric": born["dielectric"]}
    else:
        raise InvalidArgumentError(f"born must be a BORN file path or a mapping, not {type(born).__name__}")
    dielectric = as_floats("the dielectric tensor", params.pop("dielectric"))
    if dielectric.shape != (3, 3) or not np.isfinite(dielectric).all() or \
            not np.allclose(dielectric, dielectric.T, atol=1e-6) or np.linalg.eigvalsh(dielectric).min() < 1.0 or \
            not np.isfinite(charges).all() or np.abs(charges).max() > MAX_BORN_CHARGE:
        raise InvalidArgumentError(f"need Born charges within ±{MAX_BORN_CHARGE} e and a finite, symmetric 3x3 "
                                   f"dielectric tensor whose eigenvalues are >= 1 (got {dielectric.tolist()})")
    bad = {k: v for k, v in params.items() if not (isinstance(v, float) and 0 < v < np.inf)}
    if bad:  # the BORN file's first line: unit factor, G_cutoff, Lambda of phonopy's Ewald sum
        raise InvalidArgumentError(f"the BORN file's first line must hold finite positive numbers, got {bad}")
    imbalance = np.abs(charges.sum(axis=0)).max()
    if imbalance > 0.1:
        logger.warning("the Born charges of the primitive cell sum to %.3g e, not zero (charge neutrality broken)",
                       imbalance)
    # phonopy's unit factor of the correction for eV and Å (VASP's units, ours), unless the BORN file gives one
    return {"factor": get_calculator_physical_units("vasp").nac_factor, **params, "born": charges,
            "dielectric": dielectric}


def _run_band_structure(ph: Phonopy, npoints: int, symprec: float) -> None:
    """Bands along seekpath's high-symmetry path of phonopy's primitive cell, in that cell's own reciprocal basis.

    phonopy's ``auto_band_structure`` reads seekpath's coordinates, which are in the basis of seekpath's
    standardised primitive cell, in the basis of phonopy's primitive; where the two cells differ (a triclinic
    crystal, an axis order other than the standard one) its labels stand at the wrong q-points.
    """
    with warnings.catch_warnings():  # a primitive_matrix giving a supercell: seekpath warns that labels lose meaning
        warnings.simplefilter("ignore", seekpath.SupercellWarning)
        path = seekpath.get_path_orig_cell(ph.primitive.totuple(), symprec=symprec)
    coords, pairs = path["point_coords"], path["path"]
    bands = [np.linspace(coords[a], coords[b], npoints) for a, b in pairs]
    labels, connections = [pairs[0][0]], []
    for (_, end), following in zip(pairs, [*pairs[1:], None]):
        connected = following is not None and following[0] == end
        connections.append(connected)
        labels += [end] if connected or following is None else [end, following[0]]
    ph.run_band_structure(bands, labels=[_tex_label(name) for name in labels], path_connections=connections)


def _tex_label(name: str) -> str:
    r"""A seekpath point name as TeX: ``GAMMA`` -> ``$\Gamma$``, ``SIGMA_0`` -> ``$\Sigma_{0}$``, ``X_1`` -> ``$\mathrm{X}_{1}$``."""
    base, _, sub = name.partition("_")
    return "$" + GREEK_LABELS.get(base, rf"\mathrm{{{base}}}") + (f"_{{{sub}}}" if sub else "") + "$"


def to_ase_atoms(cell: PhonopyAtoms) -> Atoms:
    """A phonopy cell as a 3D-periodic ``ase.Atoms`` with its masses."""
    return Atoms(
        symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, masses=cell.masses, pbc=True
    )


def _imaginary_modes(ph: Phonopy, tolerance: float) -> list[tuple[float, tuple[float, float, float]]]:
    """Lowest frequency (THz) and q-point of every band-path and mesh q-point, Γ excluded, that
    has a mode below ``-tolerance``; most negative first."""
    qpoints = np.concatenate([*ph.band_structure.qpoints, ph.mesh.qpoints])
    lowest = np.concatenate([f.min(axis=1) for f in ph.band_structure.frequencies] + [ph.mesh.frequencies.min(axis=1)])
    at_gamma = np.all(np.abs(qpoints - np.round(qpoints)) < 1e-8, axis=1)
    found: dict[tuple[float, ...], float] = {}
    for q, f in zip(qpoints[~at_gamma], lowest[~at_gamma]):
        if f < -tolerance:
            key = tuple(float(x) for x in np.round(q, 6))
            found[key] = min(float(f), found.get(key, np.inf))
    return sorted((f, q) for q, f in found.items())


def _write(ph: Phonopy, out: Path) -> dict[str, Path]:
    """Write phonopy's files and the two plots into ``out``; return name -> path."""
    files = {
        "phonopy_params": out / "phonopy_params.yaml",
        "band": out / "band.yaml",
        "total_dos": out / "total_dos.dat",
        "thermal_properties": out / "thermal_properties.yaml",
        "band_dos_plot": out / "phonons.png",
        "thermal_plot": out / "thermal_properties.png",
    }
    ph.save(files["phonopy_params"], settings={"force_constants": True})
    ph.write_yaml_band_structure(filename=files["band"])
    ph.write_total_dos(files["total_dos"])
    ph.thermal_properties.write_yaml(files["thermal_properties"])
    plt = ph.plot_band_structure_and_dos()
    fig = plt.gcf()
    fig.set_size_inches(9, 4.5)
    fig.axes[0].set_ylabel("frequency (THz)")
    shown = [ax for ax in fig.axes if ax.get_visible()]  # phonopy's grid holds hidden spare axes after the DOS
    shown[-1].set_xlabel("DOS (states/THz per primitive cell)")
    fig.savefig(files["band_dos_plot"], dpi=120, bbox_inches="tight")  # phonopy leaves wide margins
    plt.close(fig)
    fig = Figure(figsize=(5, 3.5), layout="tight")
    ax = fig.subplots()
    ph.thermal_properties.plot(ax)
    ax.set_title(f"per mole of primitive cells ({len(ph.primitive)} atoms)", fontsize=9)
    fig.savefig(files["thermal_plot"], dpi=120)
    return files
