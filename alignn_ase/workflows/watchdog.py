"""A molecular-dynamics watchdog: stop with a clear error, and keep the last good frame,
when a simulation blows up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from ..errors import InvalidArgumentError, SimulationError
from ..neighbors import all_pairs
from .calc import new_file

logger = logging.getLogger(__name__)

#: Å; the neighbour-list cut-off of the minimum-distance check (pairs closer than min_distance are then picked)
_PAIR_CUTOFF = 3.0


class Watchdog:
    """Checks every MD frame; raises :class:`~alignn_ase.errors.SimulationError` on the first bad one.

    A frame is bad when its energy, forces, positions or momenta are not finite, two atoms are closer
    than ``min_distance`` (Å), or its temperature exceeds ``max_temperature_K``
    (K). The last frame that passed (positions, momenta, cell, energy, forces)
    is written as extended XYZ to ``frame_path`` (when given) before raising.
    """

    def __init__(self, min_distance: float = 0.5, max_temperature_K: float = np.inf, frame_path: Path | None = None):
        if not min_distance > 0 or not max_temperature_K > 0:  # NaN fails too (it would switch a check off)
            raise InvalidArgumentError(
                f"watchdog limits must be positive (min_distance={min_distance} Å, "
                f"max_temperature_K={max_temperature_K} K)"
            )
        self.min_distance = float(min_distance)
        self.max_temperature_K = float(max_temperature_K)
        self.frame_path = frame_path
        self.last_good: Atoms | None = None
        self.last_good_step: int | None = None

    def problem(self, atoms: Atoms) -> str | None:
        """What is wrong with the frame (atoms with a calculator attached), or None if nothing."""
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        if not np.isfinite(energy) or not np.isfinite(forces).all():
            bad = np.flatnonzero(~np.isfinite(forces).all(axis=1))
            return f"non-finite energy ({energy}) or forces (atoms {bad[:5].tolist()})"
        positions = atoms.get_positions()
        if not np.isfinite(positions).all():
            return "non-finite positions"
        if not np.isfinite(atoms.get_momenta()).all():
            return "non-finite momenta"
        # all_pairs, not vesin directly: it guards against the structures vesin cannot bin (an atom far away); at a
        # cut-off of a few Å, not at min_distance, where vesin's cell count would exceed its limit in any cell wider
        # than ~23 Å and send every step to ASE's slower neighbour list
        pairs = all_pairs(positions, atoms.cell.array, atoms.pbc, max(self.min_distance, _PAIR_CUTOFF))
        pairs = pairs.select(pairs.distance < self.min_distance)
        d = pairs.distance
        if len(d) and d.min() < self.min_distance:
            k = int(np.argmin(d))
            i, j = sorted((int(pairs.src[k]), int(pairs.dst[k])))
            return f"atoms {i} and {j} are {d[k]:.3f} Å apart (watchdog limit {self.min_distance} Å)"
        temperature = atoms.get_temperature()
        if temperature > self.max_temperature_K:
            return f"temperature {temperature:.0f} K exceeds the watchdog limit {self.max_temperature_K:.0f} K"
        return None

    def check(self, atoms: Atoms, step: int) -> None:
        """Remember ``atoms`` as the last good frame, or stop (see :meth:`stop`) if it is bad."""
        problem = self.problem(atoms)
        if problem is not None:
            self.stop(problem, step)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        self.last_good, self.last_good_step = frame, step

    def stop(self, problem: str, step: int) -> NoReturn:
        """Write the last good frame (if any, and if there is a ``frame_path``) and raise SimulationError."""
        message = f"MD stopped at step {step}: {problem}."
        path = None
        if self.last_good is None:
            message += " No earlier frame passed the checks; nothing written."
        elif self.frame_path is None:
            message += (
                f" Last good frame (step {self.last_good_step}) kept in the exception's .atoms (no output folder)."
            )
        else:
            path = new_file(self.frame_path)
            write(path, self.last_good, format="extxyz")
            message += f" Last good frame (step {self.last_good_step}) written to {path}"
        logger.error(message)
        raise SimulationError(message, atoms=self.last_good, path=path)
