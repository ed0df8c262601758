"""Lattice thermal conductivity through phono3py: second- and third-order force constants from finite
displacements (every displaced supercell in batched evaluations), then the phonon Boltzmann transport equation in
the relaxation-time approximation or solved directly (LBTE)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from phonopy.phonon.grid import get_ir_grid_points
from phonopy.structure.cells import PrimitiveMatrixAutoDefaultWarning

from ..errors import InvalidArgumentError
from ..graph import is_3d_periodic
from .calc import as_floats, calculate_many, check_positive, check_structure, get_calculator, output_folder, write_csv
from .phonons import check_mesh, nac_params, phonopy_unitcell, resolve_mesh, supercell_matrix, to_ase_atoms
from .results import ConductivityResult

logger = logging.getLogger(__name__)

DEFAULT_KAPPA_TEMPERATURES = np.arange(100.0, 1001.0, 50.0)
#: displaced supercells at most (phono3py's third-order displacements of a low-symmetry cell run into the
#: tens of thousands; a pair cut-off, ``cutoff_pair_distance``, leaves out the distant pairs)
MAX_SUPERCELLS = 20_000
#: the Boltzmann transport solvers: relaxation-time approximation, direct solution of the linearised equation
METHODS = ("rta", "lbte")
#: phono3py's order of the conductivity tensor's six components
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
#: THz; modes below minus this on the q-point mesh (Γ's acoustic modes aside) count as imaginary
IMAGINARY_TOLERANCE = 0.05


def thermal_conductivity(
    atoms: Atoms,
    supercell: float | Sequence[int] | Sequence[Sequence[int]] = 10.0,
    phonon_supercell: float | Sequence[int] | Sequence[Sequence[int]] | None = None,
    displacement: float = 0.03,
    cutoff_pair_distance: float | None = None,
    mesh: float | Sequence[int] = 50.0,
    temperatures: Sequence[float] | np.ndarray = DEFAULT_KAPPA_TEMPERATURES,
    method: str = "rta",
    isotope: bool = False,
    born: str | Path | Mapping[str, Any] | None = None,
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "kappa_output",
    primitive_matrix: str | Sequence[Sequence[float]] | None = "auto",
    symprec: float = 1e-5,
    progress: bool = True,
) -> ConductivityResult:
    """Lattice thermal conductivity of ``atoms`` (taken as phono3py's unit cell; relax it first, cell included)
    from three-phonon scattering, with phono3py.

    The forces of every displaced supercell (phono3py's pairs of displacements for the third-order force constants,
    single ones for the second-order) come from the calculator, minus the residual forces of the undisplaced
    supercell; the force constants get phono3py's translational and permutation symmetrisation. The Boltzmann
    transport equation is then solved on a q-point mesh, in the relaxation-time approximation (``"rta"``, the
    usual choice, which underestimates the conductivity of stiff crystals such as diamond) or directly
    (``"lbte"``, memory growing with the square of the mesh's irreducible points). Only phonon-phonon (and with
    ``isotope``, isotope) scattering: no boundaries, defects or electrons (metals conduct mostly by electrons).

    Args:
        atoms: the (relaxed) unit cell, 3D periodic. Its masses are used.
        supercell: the supercell of the third-order force constants: ``(n1, n2, n3)``, a 3x3 integer matrix or
            a minimum thickness in Å (see :func:`~alignn_ase.workflows.phonons.supercell_matrix`).
        phonon_supercell: the supercell of the second-order force constants (harmonic phonons), often larger;
            None: the same as ``supercell``.
        displacement: atomic displacement, Å (phono3py's default 0.03).
        cutoff_pair_distance: Å; pairs of displaced atoms further apart are left out of the third-order force
            constants (fewer supercells, their interactions set to zero); None: every pair.
        mesh: q-point mesh: three integers, or phonopy's length (a number; larger = denser; 50 gives 16x16x16
            for silicon, whose conductivity converges near 19x19x19). The cost grows about as the square of the
            number of q-points. On coarse meshes phono3py's tetrahedron sums over degenerate bands make the result
            sensitive, by up to a few per cent, to rounding-level changes of the force constants: converge the mesh.
        temperatures: K, each > 0.
        method: ``"rta"`` or ``"lbte"``.
        isotope: add the scattering by the natural isotope mix of each element.
        born: for polar crystals, Born effective charges and the high-frequency dielectric tensor (a BORN file or a
            mapping, as :func:`~alignn_ase.workflows.phonons` takes them): phonopy's non-analytic correction of the
            harmonic phonons (LO-TO splitting), which changes the conductivity of ionic crystals. None: no
            correction.
        calculator: ASE calculator; default the one attached to ``atoms``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``phono3py_params.yaml`` (structure, displacements, forces), ``fc2.hdf5`` and
            ``fc3.hdf5`` (phono3py's files, for its own command line), ``kappa.csv`` and ``kappa.png``; None
            writes nothing.
        primitive_matrix: phonopy's primitive matrix (``"auto"`` finds it by symmetry).
        symprec: symmetry tolerance, Å.
        progress: show a tqdm bar while the displaced supercells are evaluated.

    Returns a :class:`~alignn_ase.workflows.results.ConductivityResult`: the conductivity tensor at each
    temperature in W/(m K), its mean, the imaginary modes found on the mesh, and the ``Phono3py`` object.

    Raises :class:`~alignn_ase.errors.InvalidArgumentError` for input it cannot use, and when every third-order
    force constant is zero (a harmonic potential, or a supercell too small: the conductivity would be infinite).
    """
    try:
        from phono3py import Phono3py
        from phono3py.file_IO import write_fc2_to_hdf5, write_fc3_to_hdf5
    except ImportError:
        raise InvalidArgumentError(
            "thermal_conductivity needs phono3py: pip install phono3py (or alignn-ase[kappa])"
        ) from None
    check_structure(atoms)
    if not is_3d_periodic(atoms):
        raise InvalidArgumentError("the thermal conductivity needs a 3D periodic cell")
    check_positive(displacement=displacement, symprec=symprec)
    if cutoff_pair_distance is not None:
        check_positive(cutoff_pair_distance=cutoff_pair_distance)
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(isotope, (bool, np.bool_)):
        raise InvalidArgumentError(f"isotope must be True or False, got {isotope!r}")
    check_mesh(mesh)
    temps = as_floats("temperatures", temperatures)
    if temps.ndim != 1 or temps.size == 0 or not (np.isfinite(temps).all() and (temps > 0).all()):
        raise InvalidArgumentError("temperatures must be a non-empty list of finite values > 0 K (the conductivity "
                                   "diverges at 0 K)")
    calc = get_calculator(atoms, calculator)
    out = output_folder(output_dir)

    fc3_matrix = supercell_matrix(atoms, supercell)
    fc2_matrix = None if phonon_supercell is None else supercell_matrix(atoms, phonon_supercell)
    with warnings.catch_warnings():  # "auto" is our documented choice, not phonopy's v3-compatibility default
        warnings.simplefilter("ignore", PrimitiveMatrixAutoDefaultWarning)
        ph3 = Phono3py(phonopy_unitcell(atoms), supercell_matrix=fc3_matrix, phonon_supercell_matrix=fc2_matrix,
                       primitive_matrix=primitive_matrix, symprec=symprec)
    nac = (nac_params(ph3.phonon_supercell, ph3.phonon_primitive, born, len(atoms), symprec) if born is not None
           else None)  # checked before the forces
    ph3.mesh_numbers = mesh_numbers = resolve_mesh(mesh, ph3.primitive.cell)
    if method == "lbte":
        _check_lbte_memory(ph3, len(temps))

    ph3.generate_displacements(distance=displacement, cutoff_pair_distance=cutoff_pair_distance)
    fc3_cells = ph3.supercells_with_displacements  # None where a pair lies beyond cutoff_pair_distance
    fc2_cells = ph3.phonon_supercells_with_displacements if fc2_matrix is not None else []
    computed = [c for c in fc3_cells if c is not None]
    if len(computed) + len(fc2_cells) > MAX_SUPERCELLS:
        raise InvalidArgumentError(
            f"phono3py asks for {len(computed) + len(fc2_cells)} displaced supercells, more than {MAX_SUPERCELLS}; "
            "give a cutoff_pair_distance (e.g. 4-6 Å) or a smaller supercell"
        )
    logger.info("thermal conductivity: %d displaced supercells of %d atoms%s", len(computed), len(ph3.supercell),
                f" and {len(fc2_cells)} of {len(ph3.phonon_supercell)} atoms" if fc2_cells else "")
    structures = [to_ase_atoms(ph3.supercell)] + [to_ase_atoms(c) for c in computed]
    if fc2_cells:
        structures += [to_ase_atoms(ph3.phonon_supercell)] + [to_ase_atoms(c) for c in fc2_cells]
    results = calculate_many(structures, calc, progress=progress)
    forces = [r["forces"] for r in results]
    residual, fc3_forces = forces[0], iter(forces[1 : 1 + len(computed)])
    ph3.forces = np.array([next(fc3_forces) - residual if c is not None else np.zeros_like(residual)
                           for c in fc3_cells])
    if fc2_cells:
        phonon_residual = forces[1 + len(computed)]
        ph3.phonon_forces = np.array(forces[2 + len(computed) :]) - phonon_residual
    ph3.produce_fc3()
    if fc2_cells:
        ph3.produce_fc2()
    ph3.symmetrize_fc3()
    ph3.symmetrize_fc2()
    if np.abs(ph3.fc3).max() < 1e-8:
        raise InvalidArgumentError(
            "every third-order force constant is zero (a harmonic potential, or a supercell so small that a "
            "displaced atom and all its images feel no anharmonic force): the conductivity would be infinite"
        )

    if nac is not None:
        ph3.nac_params = nac
    ph3.init_phph_interaction()
    ph3.run_phonon_solver()
    frequencies, _, addresses = ph3.get_phonon_data()
    at_gamma = np.all(addresses == 0, axis=1)
    gamma = frequencies[at_gamma].ravel()
    optical = gamma[np.argsort(np.abs(gamma))[3:]]  # the three closest to zero are Γ's acoustic modes
    modes = np.concatenate([frequencies[~at_gamma].ravel(), optical])  # THz, every mode on the mesh but those three
    imaginary = int(np.sum(modes < -IMAGINARY_TOLERANCE))
    logger.info("thermal conductivity: %s solution on a %s q-point mesh at %d temperatures", method.upper(),
                "x".join(str(int(n)) for n in mesh_numbers), len(temps))
    ph3.run_thermal_conductivity(is_LBTE=method == "lbte", temperatures=temps, is_isotope=bool(isotope))
    kappa = np.asarray(ph3.thermal_conductivity.kappa)[0]  # (temperatures, 6): the first (only) smearing width
    if not np.isfinite(kappa).all():
        raise InvalidArgumentError(f"phono3py gave a non-finite conductivity ({kappa.tolist()}); "
                                   "check the structure's phonons (phonons()) and the supercell")
    result = ConductivityResult(
        temperatures=temps,
        kappa=kappa,
        method=method,
        isotope=bool(isotope),
        mesh=tuple(int(n) for n in mesh_numbers),
        n_supercells=len(structures),
        imaginary_modes=imaginary,
        lowest_frequency=float(modes.min()),
        non_analytic_correction=nac is not None,
        phono3py=ph3,
    )
    if imaginary:
        logger.warning("%d imaginary modes on the q-point mesh (lowest %.3f THz): phono3py leaves them out, so the "
                       "conductivity is not that of a stable crystal; check phonons() and relax the structure",
                       imaginary, modes.min())
    if out is not None:
        files = {"phono3py_params": out / "phono3py_params.yaml", "fc2": out / "fc2.hdf5", "fc3": out / "fc3.hdf5",
                 "kappa_csv": out / "kappa.csv", "kappa_plot": out / "kappa.png"}
        ph3.save(files["phono3py_params"])
        write_fc2_to_hdf5(ph3.fc2, filename=files["fc2"], p2s_map=ph3.phonon_primitive.p2s_map)
        write_fc3_to_hdf5(ph3.fc3, filename=files["fc3"], p2s_map=ph3.primitive.p2s_map)
        write_csv(files["kappa_csv"], ["temperature_K", *(f"kappa_{c}_W_per_mK" for c in VOIGT), "kappa_mean_W_per_mK"],
                  [temps, *kappa.T, result.kappa_mean])
        result.plot(files["kappa_plot"])
        result.files = files
    return result


def _check_lbte_memory(ph3: Any, n_temperatures: int) -> None:
    """Raise :class:`~alignn_ase.errors.InvalidArgumentError` if phono3py's LBTE collision matrix (per temperature,
    (3 x irreducible q-points x bands)^2 doubles) would exceed 80 % of this machine's memory: phono3py would be killed
    for it after the whole force-constant stage."""
    n_ir = len(get_ir_grid_points(ph3.grid)[0])
    n_band = 3 * len(ph3.primitive)
    need = n_temperatures * (3 * n_ir * n_band) ** 2 * 8.0
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > 0.8 * have:
        raise InvalidArgumentError(
            f"the LBTE collision matrix would take {need / 2**30:.1f} GiB ({n_ir} irreducible q-points, {n_band} "
            f"bands, {n_temperatures} temperatures), more than this machine's {have / 2**30:.0f} GiB allow: use "
            "method='rta', a coarser mesh or fewer temperatures"
        )
