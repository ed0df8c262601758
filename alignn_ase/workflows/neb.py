"""Minimum-energy paths with ASE's nudged elastic band, every interior image of a step evaluated in one batch."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator, Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.geometry import find_mic
from ase.mep import NEB
from ase.utils.forcecurve import fit_images
from tqdm import tqdm

from ..errors import ConvergenceWarning, InvalidArgumentError, is_whole
from .calc import calculate_many, check_numbers, check_structure, get_calculator, output_folder, write_csv
from .relax import OPTIMIZERS
from .results import NEBResult

logger = logging.getLogger(__name__)

#: interior images at most
MAX_IMAGES = 200
#: Å: end points closer than this (every atom) are the same structure
SAME_STRUCTURE = 1e-3
#: ASE's NEB tangent methods
NEB_METHODS = ("improvedtangent", "aseneb", "eb", "spline", "string")


class _Band:
    """Evaluates all interior images of a band in one :func:`~alignn_ase.workflows.calc.calculate_many` call (one
    batched ``predict`` for an :class:`~alignn_ase.ALIGNNCalculator`) whenever one of them is asked for results at a
    geometry the last evaluation did not see; the optimiser moves every image before the band asks for forces."""

    def __init__(self, images: list[Atoms], calculator: BaseCalculator):
        self.images = images
        self.calculator = calculator
        self.seen: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(images)
        self.results: list[dict[str, Any]] = [{} for _ in images]
        self.evaluations = 0

    def results_for(self, index: int, atoms: Atoms) -> dict[str, Any]:
        if not self._current(index, atoms):
            structures = [image.copy() for image in self.images]
            for structure in structures:
                structure.set_constraint()  # forces as the calculator gives them; the NEB applies constraints
            self.results = calculate_many(structures, self.calculator, progress=False)
            self.seen = [(image.positions.copy(), image.cell.array.copy()) for image in self.images]
            self.evaluations += 1
        return self.results[index]

    def _current(self, index: int, atoms: Atoms) -> bool:
        seen = self.seen[index]
        return seen is not None and np.array_equal(seen[0], atoms.positions) and np.array_equal(seen[1], atoms.cell.array)


class _ImageCalculator(Calculator):
    """One image's calculator: its energy and forces come from ``source(atoms)``, a result of
    :func:`~alignn_ase.workflows.calc.calculate_many` (the band's batched evaluation, or an end point's once)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, source: Callable[[Atoms], dict[str, Any]]):
        super().__init__()
        self.source = source

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        res = self.source(self.atoms)
        self.results = {"energy": float(res["energy"]), "free_energy": float(res["energy"]),
                        "forces": np.array(res["forces"])}


def neb(
    initial: Atoms,
    final: Atoms,
    images: int = 5,
    climb: bool = True,
    fmax: float = 0.05,
    max_steps: int = 500,
    spring: float = 0.1,
    method: str = "improvedtangent",
    interpolation: str = "idpp",
    optimizer: str = "FIRE",
    calculator: BaseCalculator | None = None,
    output_dir: str | Path | None = "neb_output",
    progress: bool = True,
) -> NEBResult:
    """Minimum-energy path from ``initial`` to ``final`` by ASE's nudged elastic band (``ase.mep.NEB``).

    The band holds ``images`` interior images interpolated between the two end points (``"idpp"``: the image
    dependent pair potential, or ``"linear"``) from their positions as given: an atom that crosses the cell's
    boundary on the way must be given unwrapped in ``final`` (an atom moved by half a cell vector could go either
    way round under the minimum image; ASE's default too). At each optimiser step
    all interior images are evaluated together, in one batched ``predict`` call for an ``ALIGNNCalculator``
    (one by one for other calculators). The end points are not moved: relax them first.

    Args:
        initial, final: the end points: the same atoms in the same order, with the same cell and periodicity
            (not modified). Constraints of ``initial`` (e.g. ``FixAtoms`` on a slab's bottom) hold for every image.
        images: number of interior images (1 to 200). End points that are the same structure are refused.
        climb: climbing image: the highest image climbs to the saddle point (its energy is then the barrier).
        fmax: convergence criterion on the images' NEB forces, eV/Å.
        max_steps: optimiser steps at most; stopping there is a :class:`~alignn_ase.errors.ConvergenceWarning`.
        spring: spring constant between images, eV/Å².
        method: ASE's tangent method: ``"improvedtangent"`` (default), ``"aseneb"``, ``"eb"``, ``"spline"``,
            ``"string"``.
        interpolation: ``"idpp"`` or ``"linear"``.
        optimizer: ``"FIRE"``, ``"BFGS"`` or ``"LBFGS"`` (ASE's; FIRE is the robust choice for bands).
        calculator: ASE calculator; default the one attached to ``initial``, else ``ALIGNNCalculator()``.
        output_dir: folder for ``neb.traj`` (the final band), ``neb.csv`` (reaction coordinate Å, energy eV) and
            ``neb.png``; None writes nothing.
        progress: show a tqdm progress bar over the optimiser steps.

    Returns a :class:`~alignn_ase.workflows.results.NEBResult`: the band, the energy of each image relative to
    ``initial`` (eV), the forward and reverse barriers (eV), the reaction coordinate (Å) and whether it converged.
    """
    if optimizer not in OPTIMIZERS or method not in NEB_METHODS or interpolation not in ("idpp", "linear"):
        raise InvalidArgumentError(
            f"need optimizer in {list(OPTIMIZERS)}, method in {NEB_METHODS} and interpolation 'idpp' or 'linear' "
            f"(got {optimizer!r}, {method!r}, {interpolation!r})"
        )
    check_numbers(fmax=fmax, spring=spring)
    if not (0 < fmax < np.inf and 0 < spring < np.inf) or not is_whole(images, 1) or images > MAX_IMAGES \
            or not is_whole(max_steps, 0) or not isinstance(climb, (bool, np.bool_)):
        raise InvalidArgumentError(
            f"need finite fmax > 0 (eV/Å) and spring > 0 (eV/Å²), whole images from 1 to {MAX_IMAGES}, a whole "
            f"max_steps >= 0, climb True or False (got {fmax!r}, {spring!r}, {images!r}, {max_steps!r}, {climb!r})"
        )
    climb = bool(climb)
    check_structure(initial)
    check_structure(final)
    if len(initial) != len(final) or (initial.numbers != final.numbers).any():
        raise InvalidArgumentError("initial and final must hold the same atoms in the same order")
    if (initial.pbc != final.pbc).any() or not np.allclose(initial.cell.array, final.cell.array, atol=1e-6):
        raise InvalidArgumentError("initial and final must have the same cell and periodicity (the band keeps the cell)")
    moves = np.linalg.norm(final.positions - initial.positions, axis=1)
    if moves.max() < SAME_STRUCTURE:
        raise InvalidArgumentError(f"initial and final are the same structure (no atom moves by {SAME_STRUCTURE} Å)")
    if initial.pbc.any():
        shortest = np.linalg.norm(find_mic(final.positions - initial.positions, initial.cell, initial.pbc)[0], axis=1)
        k = int(np.argmax(moves - shortest))
        if moves[k] - shortest[k] > 1e-3:
            warnings.warn(f"atom {k} moves {moves[k]:.2f} Å between the end points, but a periodic image of its final "
                          f"position lies {shortest[k]:.2f} Å away: if final was wrapped into the cell, unwrap it (the "
                          "band takes the positions as given)", UserWarning, stacklevel=2)
    calc = get_calculator(initial, calculator)
    out = output_folder(output_dir)
    band = [initial.copy() for _ in range(images + 1)] + [final.copy()]
    band[-1].set_constraint([c.copy() for c in initial.constraints])
    band[-1].set_cell(initial.cell, scale_atoms=False)  # within 1e-6 Å of it; ASE's NEB wants one cell exactly
    ends = calculate_many([band[0], band[-1]], calc, progress=False)
    evaluator = _Band(band[1:-1], calc)
    for image, end in zip((band[0], band[-1]), ends):  # the end points do not move: evaluated once
        image.calc = _ImageCalculator(lambda _, end=end: end)
    for k, image in enumerate(band[1:-1]):
        image.calc = _ImageCalculator(lambda atoms, k=k: evaluator.results_for(k, atoms))
    path = NEB(band, k=spring, climb=climb, method=method)
    try:
        path.interpolate(method=interpolation)  # from the positions as given: a minimum image can be ambiguous
    except RuntimeError as exc:  # ASE: "Constraints in image ... affect the interpolation"
        raise InvalidArgumentError("the end points do not fit the constraints of initial (fixed atoms must stay "
                                   f"put): {str(exc).splitlines()[0]}") from None
    opt = OPTIMIZERS[optimizer](path, logfile=None)
    with tqdm(total=max_steps, desc=f"neb ({optimizer})", disable=not progress, leave=False) as bar:
        opt.attach(lambda: bar.update(1 if opt.nsteps else 0))
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
    energies = np.array([image.get_potential_energy() for image in band])
    fit = fit_images(band)  # the reaction coordinate (distances between images along the band) and a smooth profile
    relative = energies - energies[0]
    result = NEBResult(
        images=[_detached(image) for image in band],
        energies=relative,
        reaction_coordinate=np.asarray(fit.path),
        profile=(np.asarray(fit.fit_path), np.asarray(fit.fit_energies)),  # relative to the first image
        barrier_forward=float(relative.max()),
        barrier_reverse=float(relative.max() - relative[-1]),
        climb=climb,
        converged=converged,
        steps=int(opt.nsteps),
        band_evaluations=evaluator.evaluations,
    )
    if not converged:
        warnings.warn(f"the band did not converge to fmax={fmax} eV/Å within {max_steps} steps; returning the last band",
                      ConvergenceWarning, stacklevel=2)
    logger.info("NEB: barrier %.4f eV forward, %.4f eV reverse, %d steps", result.barrier_forward,
                result.barrier_reverse, result.steps)
    if out is not None:
        result.files = _write(result, out)
    return result


def _detached(image: Atoms) -> Atoms:
    """A copy of ``image`` holding its energy and forces (eV, eV/Å) in a single-point calculator."""
    copy = image.copy()
    copy.calc = SinglePointCalculator(copy, energy=image.get_potential_energy(),
                                      forces=image.get_forces(apply_constraint=False))
    return copy


def _write(result: NEBResult, out: Path) -> dict[str, Path]:
    files = {"band": out / "neb.traj", "data": out / "neb.csv", "plot": out / "neb.png"}
    write(files["band"], result.images)
    write_csv(files["data"], ["reaction_coordinate_A", "energy_eV"], [result.reaction_coordinate, result.energies])
    result.plot(files["plot"])
    return files
