"""The ``alignn-ase`` command: a thin layer over the Python API.

One argparse parser; each subcommand is registered by one ``add_<name>(subparsers,
parents)`` function listed in :data:`SUBCOMMANDS`, which picks its shared options from
``parents`` (``"global"``: --debug, -v; ``"model"``: --model; ``"compute"``: --device,
--dtype, --compile) and sets ``func`` to the ``cmd_<name>(args)`` function that runs it and returns
the exit status. A user error (anything alignn-ase rejects on purpose, a missing or
unreadable file) prints one line ``alignn-ase: error: ...`` and exits with status 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from ase.io.formats import UnknownFileTypeError, filetype, ioformats

from .allocator import tune_malloc
from .calculator import ALIGNNCalculator
from .check import run_checks
from .download import cached_path, upstream_dir, upstream_models
from .errors import AlignnAseError, InvalidArgumentError, InvalidStructureError
from .io import available_models, load_model
from .workflows import (
    ENSEMBLES, calculate_many, elastic, eos, neb, phonons, qha, relax, run_md, thermal_conductivity,
)
from .workflows.calc import new_file

PROG = "alignn-ase"
Parents = dict[str, argparse.ArgumentParser]


# ---------------------------------------------------------------- shared helpers


def read_structures(path: str | Path, index: str = "-1") -> list[Atoms]:
    """Structures in ``path`` (any format ASE reads); ``index`` as in ``ase.io.read`` (``":"`` = all)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidStructureError(f"{path} is a folder, not a structure file")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        images = read(path, index=index)
    except Exception as exc:  # ASE's readers raise anything from StopIteration to KeyError on bad input
        frames = _frame_count(path)
        if isinstance(exc, (StopIteration, IndexError)) and frames:  # a readable file, and an index beyond it
            raise InvalidStructureError(f"{path} holds {frames} frame(s): none at index {index!r}") from None
        raise InvalidStructureError(f"cannot read a structure from {path}: {type(exc).__name__}: {exc}") from exc
    images = images if isinstance(images, list) else [images]
    if not images:
        raise InvalidStructureError(f"{path} holds no structure at index {index!r}")
    for atoms in images:  # ASE reads a site shared by several elements as one of them
        shared = {site: occ for site, occ in (atoms.info.get("occupancy") or {}).items() if len(occ) > 1 or
                  any(abs(f - 1.0) > 1e-6 for f in occ.values())}
        if shared:
            site, occ = next(iter(shared.items()))
            raise InvalidStructureError(
                f"{path} has {len(shared)} partially occupied site(s) (e.g. site {site}: {occ}); a model needs one "
                "element per site: order the structure first (e.g. a supercell with pymatgen's "
                "OrderDisorderedStructureTransformation)"
            )
    return images


def _frame_count(path: Path) -> int:
    """How many frames ASE reads from ``path`` (0 if it reads none)."""
    try:
        return len(read(path, index=":"))
    except Exception:  # an unreadable file
        return 0


def read_one(args: argparse.Namespace) -> Atoms:
    """The structure named by ``args.structure`` and ``args.index`` (see :func:`add_structure`)."""
    images = read_structures(args.structure, args.index)
    if len(images) > 1:
        raise InvalidArgumentError(f"--index {args.index} picks {len(images)} frames of {args.structure}; this "
                                   "command takes one (e.g. --index 0, or -1 for the last)")
    return images[0]


def add_structure(p: argparse.ArgumentParser, help: str = "input structure (any format ASE reads)") -> None:
    """The positional input file and ``--index`` of commands that work on one structure."""
    p.add_argument("structure", help=help)
    p.add_argument("--index", default="-1", help="which frame of the file (ASE index; default -1, the last)")


#: File name suffixes written as extended XYZ whatever ASE would guess from the rest of the name.
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")


def output_path(path: str | Path, structures: bool = True) -> Path:
    """``path`` checked before any computation, its folder made: a run must not end in a write that fails.
    With ``structures``, its name must give a format ASE can write."""
    path = Path(path)
    if structures and path.suffix not in EXTXYZ_SUFFIXES:
        try:
            fmt = filetype(str(path), read=False)
        except UnknownFileTypeError:
            fmt = None
        if fmt not in ioformats or not ioformats[fmt].can_write:
            raise InvalidArgumentError(
                f"cannot write structures to {path}: no structure format ASE can write has this name "
                "(e.g. .extxyz, .cif, .traj, POSCAR)"
            )
    return new_file(path)


def write_structures(path: Path, images: Atoms | list[Atoms]) -> None:
    """Write with the format of the file name's extension (``.extxyz``/``.xyz`` always extended XYZ,
    even where ASE would guess from the name, e.g. ``POSCAR_relaxed.extxyz``)."""
    write(path, images, format="extxyz" if path.suffix in EXTXYZ_SUFFIXES else None)


def make_calculator(
    args: argparse.Namespace, properties: Sequence[str] | None = None, default_dtype: str = "float32"
) -> ALIGNNCalculator:
    return ALIGNNCalculator(
        args.model, device=args.device, dtype=args.dtype or default_dtype, properties=properties, compile=args.compile
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, allow_nan=False))  # standard JSON: the summaries write None, never NaN


# ---------------------------------------------------------------- subcommands


def add_relax(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "relax",
        parents=_pick(parents, "global", "model", "compute"),
        help="relax positions and cell",
        description="Relax a structure.",
    )
    add_structure(p)
    p.add_argument("--fmax", type=float, default=0.02, help="force criterion, eV/Å (default 0.02)")
    p.add_argument("--optimizer", choices=["FIRE", "BFGS", "LBFGS"], default="FIRE")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--fixed-cell", action="store_true", help="relax positions only (molecules, slabs)")
    p.add_argument("--pressure", type=float, default=0.0, help="external pressure, GPa")
    p.add_argument("--fix-symmetry", action="store_true",
                   help="keep the input's space group (ASE's FixSymmetry at --symprec; e.g. before phonons)")
    p.add_argument("--symprec", type=float, default=1e-3,
                   help="symmetry tolerance of --fix-symmetry, Å (default 1e-3)")
    p.add_argument("--trajectory", help="ASE trajectory of every step")
    p.add_argument("-o", "--output", help="relaxed structure file (default: <input stem>_relaxed.extxyz)")
    p.set_defaults(func=cmd_relax)


def cmd_relax(args: argparse.Namespace) -> int:
    atoms = read_one(args)
    output = output_path(args.output or f"{Path(args.structure).stem}_relaxed.extxyz")
    result = relax(
        atoms,
        fmax=args.fmax,
        relax_cell=not args.fixed_cell,
        optimizer=args.optimizer,
        max_steps=args.max_steps,
        trajectory=args.trajectory,
        calculator=make_calculator(args),
        pressure_GPa=args.pressure,
        fix_symmetry=args.fix_symmetry,
        symprec=args.symprec,
    )
    write_structures(output, result.atoms)
    print_json({**result.summary(), "output": str(output)})
    return 0


def add_md(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "md",
        parents=_pick(parents, "global", "model", "compute"),
        help="molecular dynamics",
        description="Run molecular dynamics.",
    )
    add_structure(p)
    p.add_argument("--ensemble", choices=list(ENSEMBLES), default="nvt_langevin")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="fs (default 1)")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa, NPT ensembles")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    p.add_argument("--tdamp", type=float, help="thermostat time constant, fs (default 100 time steps)")
    p.add_argument("--pdamp", type=float, help="barostat time constant, fs (default 1000 time steps)")
    p.add_argument("--bulk-modulus", type=float, default=100.0,
                   help="GPa, an estimate for npt_berendsen's volume steps (default 100)")
    p.add_argument("--keep-velocities", action="store_true",
                   help="start from the input's momenta (e.g. the final.extxyz of an earlier run) instead of drawing "
                        "Maxwell-Boltzmann velocities")
    p.add_argument("--min-distance", type=float, default=0.5,
                   help="Å; the watchdog stops the run when two atoms come closer (default 0.5)")
    p.add_argument("--max-temperature", type=float,
                   help="K; the watchdog stops the run above it (default 10 x temperature + 1000)")
    p.add_argument("--repeat", type=int, nargs=3, metavar="N", help="run on this supercell of the input")
    p.add_argument("--log-interval", type=int, default=10, help="steps between CSV rows and trajectory frames")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trajectory", default="md.traj", help="trajectory file name in the output folder")
    p.add_argument("--output-dir", default="md_output")
    p.set_defaults(func=cmd_md)


def cmd_md(args: argparse.Namespace) -> int:
    atoms = read_one(args)
    if args.repeat:
        repeat = _integers(args.repeat, "--repeat")
        if not atoms.pbc.all() and any(n > 1 for n, p in zip(repeat, atoms.pbc) if not p):
            raise InvalidArgumentError(f"--repeat {' '.join(map(str, repeat))} repeats along a non-periodic "
                                       f"direction (pbc {atoms.pbc.tolist()}); use 1 there")
        atoms = atoms.repeat(repeat)
    result = run_md(
        atoms,
        ensemble=args.ensemble,
        temperature_K=args.temperature,
        steps=args.steps,
        timestep_fs=args.timestep,
        pressure_GPa=args.pressure,
        friction_per_fs=args.friction,
        tdamp_fs=args.tdamp,
        pdamp_fs=args.pdamp,
        bulk_modulus_GPa=args.bulk_modulus,
        trajectory=args.trajectory,
        log_interval=args.log_interval,
        seed=args.seed,
        init_velocities=not args.keep_velocities,
        output_dir=args.output_dir,
        calculator=make_calculator(args),
        min_distance=args.min_distance,
        max_temperature_K=args.max_temperature,
    )
    out = Path(args.output_dir)
    write_structures(out / "final.extxyz", result.atoms)
    result.plot(out / "md.png")
    print_json({**result.summary(), "final": str(out / "final.extxyz"), "plot": str(out / "md.png")})
    return 0


def add_phonons(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "phonons",
        parents=_pick(parents, "global", "model", "compute"),
        help="phonons with phonopy",
        description="Phonons by finite displacements.",
    )
    add_structure(p, "relaxed unit cell (any format ASE reads)")
    _add_phonon_grid(p)
    p.add_argument("--displacement", type=float, default=0.01, help="Å (default 0.01)")
    p.add_argument("--born", default=None, metavar="FILE",
                   help="phonopy BORN file (Born charges, dielectric tensor) of a polar crystal: LO-TO splitting")
    p.add_argument("--tmin", type=float, default=0.0, help="K")
    p.add_argument("--output-dir", default="phonons_output")
    p.set_defaults(func=cmd_phonons)


def add_qha(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "qha",
        parents=_pick(parents, "global", "model", "compute"),
        help="quasi-harmonic thermal expansion with phonopy",
        description="Phonons at several volumes; phonopy's QHA: volume, thermal expansion, bulk modulus and heat "
        "capacity at constant pressure against temperature (from 0 K).",
    )
    add_structure(p, "relaxed unit cell (any format ASE reads)")
    _add_phonon_grid(p)
    p.add_argument("--range", type=float, default=0.05, help="volume range ± as a fraction (default 0.05)")
    p.add_argument("--points", type=int, default=7, help="volumes (default 7)")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa (default 0)")
    p.add_argument("--eos", default="vinet", help="phonopy's EOS: vinet (default), birch_murnaghan, murnaghan")
    p.add_argument("--output-dir", default="qha_output")
    p.set_defaults(func=cmd_qha)


def _add_phonon_grid(p: argparse.ArgumentParser, mesh: float = 100.0, tstep: float = 10.0) -> None:
    """The supercell, q-mesh and temperature options of the phonon commands (``mesh``, ``tstep``: defaults)."""
    p.add_argument(
        "--supercell",
        type=float,
        nargs="+",
        default=[10.0],
        metavar="X",
        help="three repeats (e.g. 3 3 3), nine entries of phonopy's supercell matrix (row by row), or one "
        "minimum thickness in Å (default 10)",
    )
    p.add_argument(
        "--mesh",
        type=float,
        nargs="+",
        default=[mesh],
        metavar="X",
        help=f"q-mesh: three integers, or phonopy's length density (default {mesh:g})",
    )
    p.add_argument("--tmax", type=float, default=1000.0, help="K")
    p.add_argument("--tstep", type=float, default=tstep, help="K")


def _integers(values: list[float], what: str, positive: bool = True) -> list[int]:
    if not all(float(v).is_integer() and (v > 0 or not positive) for v in values):
        raise InvalidArgumentError(f"{what} needs {'positive ' if positive else ''}integers, got {values}")
    return [int(v) for v in values]


def _phonon_grid(args: argparse.Namespace, tmin: float) -> tuple[Any, Any, np.ndarray]:
    """The supercell, q-mesh and temperatures (K, from ``tmin``) of the phonon commands' options, checked."""
    if len(args.mesh) not in (1, 3):
        raise InvalidArgumentError("--mesh takes 1 or 3 numbers")
    finite = all(np.isfinite([tmin, args.tmax, args.tstep]))
    if not finite or args.tstep <= 0 or args.tmax < tmin or (args.tmax - tmin) / args.tstep > 100_000:
        raise InvalidArgumentError(
            f"need finite temperatures, --tstep > 0, --tmax >= --tmin and at most 100000 temperatures (got --tmin "
            f"{tmin}, --tmax {args.tmax}, --tstep {args.tstep})"
        )
    mesh = args.mesh[0] if len(args.mesh) == 1 else _integers(args.mesh, "--mesh")
    return _supercell(args.supercell, "--supercell"), mesh, np.arange(tmin, args.tmax + 0.5 * args.tstep, args.tstep)


def _supercell(values: list[float], flag: str) -> Any:
    """A supercell option's value: one thickness (Å), three repeats or a 3x3 matrix, checked."""
    if len(values) not in (1, 3, 9):
        raise InvalidArgumentError(f"{flag} takes 1, 3 or 9 numbers")
    if len(values) == 3:
        return _integers(values, flag)
    if len(values) == 9:  # a matrix: zeros and negative entries allowed, its determinant is checked
        return np.reshape(_integers(values, f"{flag} (a 3x3 matrix)", positive=False), (3, 3))
    return values[0]


def cmd_phonons(args: argparse.Namespace) -> int:
    supercell, mesh, temperatures = _phonon_grid(args, args.tmin)
    result = phonons(
        read_one(args),
        supercell=supercell,
        displacement=args.displacement,
        mesh=mesh,
        temperatures=temperatures,
        calculator=make_calculator(args),
        output_dir=args.output_dir,
        born=args.born,
    )
    print_json(result.summary())
    return 0


def cmd_qha(args: argparse.Namespace) -> int:
    supercell, mesh, temperatures = _phonon_grid(args, 0.0)
    result = qha(
        read_one(args),
        volume_range=args.range,
        points=args.points,
        temperatures=temperatures,
        supercell=supercell,
        mesh=mesh,
        eos_name=args.eos,
        pressure_GPa=args.pressure,
        calculator=make_calculator(args),
        output_dir=args.output_dir,
    )
    print_json(result.summary())
    return 0


def add_kappa(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "kappa",
        parents=_pick(parents, "global", "model", "compute"),
        help="lattice thermal conductivity with phono3py",
        description="Second- and third-order force constants by finite displacements (all displaced supercells in "
        "batched evaluations), then phono3py's phonon Boltzmann transport equation: the lattice thermal "
        "conductivity tensor (W/(m K)) against temperature. Writes phono3py_params.yaml, fc2.hdf5, fc3.hdf5, "
        "kappa.csv and kappa.png. Needs phono3py (pip install phono3py).",
    )
    add_structure(p, "relaxed unit cell (any format ASE reads)")
    _add_phonon_grid(p, mesh=50.0, tstep=50.0)
    p.add_argument("--tmin", type=float, default=100.0, help="K (> 0; default 100)")
    p.add_argument("--phonon-supercell", type=float, nargs="+", default=None, metavar="X",
                   help="the second-order force constants' supercell, as --supercell (default: the same)")
    p.add_argument("--displacement", type=float, default=0.03, help="Å (default 0.03)")
    p.add_argument("--cutoff-pair", type=float, default=None, metavar="Å",
                   help="leave out displaced pairs further apart than this (fewer supercells)")
    p.add_argument("--lbte", action="store_true", help="solve the linearised Boltzmann equation (default: RTA)")
    p.add_argument("--isotope", action="store_true", help="add isotope scattering (natural abundances)")
    p.add_argument("--born", default=None, metavar="FILE",
                   help="phonopy BORN file (Born charges, dielectric tensor) of a polar crystal: LO-TO splitting")
    p.add_argument("--output-dir", default="kappa_output")
    p.set_defaults(func=cmd_kappa)


def cmd_kappa(args: argparse.Namespace) -> int:
    supercell, mesh, temperatures = _phonon_grid(args, args.tmin)
    result = thermal_conductivity(
        read_one(args),
        supercell=supercell,
        phonon_supercell=None if args.phonon_supercell is None else _supercell(args.phonon_supercell,
                                                                               "--phonon-supercell"),
        displacement=args.displacement,
        cutoff_pair_distance=args.cutoff_pair,
        mesh=mesh,
        temperatures=temperatures,
        method="lbte" if args.lbte else "rta",
        isotope=args.isotope,
        born=args.born,
        calculator=make_calculator(args),
        output_dir=args.output_dir,
    )
    print_json(result.summary())
    return 0


def add_neb(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "neb",
        parents=_pick(parents, "global", "model", "compute"),
        help="minimum-energy path (nudged elastic band)",
        description="ASE's nudged elastic band between two relaxed end points (the same atoms in the same order, "
        "the same cell; the last frame of each file, constraints of the first kept); every step's interior images "
        "in one batched evaluation. Prints the barriers; writes neb.traj, neb.csv, neb.png.",
    )
    p.add_argument("initial", help="relaxed initial state (any format ASE reads)")
    p.add_argument("final", help="relaxed final state, atoms unwrapped where they cross the cell's boundary")
    p.add_argument("--images", type=int, default=5, help="interior images (default 5)")
    p.add_argument("--fmax", type=float, default=0.05, help="eV/Å (default 0.05)")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--no-climb", action="store_true", help="no climbing image")
    p.add_argument("--spring", type=float, default=0.1, help="spring constant, eV/Å² (default 0.1)")
    p.add_argument("--interpolation", default="idpp", choices=["idpp", "linear"])
    p.add_argument("--output-dir", default="neb_output")
    p.set_defaults(func=cmd_neb)


def cmd_neb(args: argparse.Namespace) -> int:
    initial, final = (read_structures(path, "-1")[0] for path in (args.initial, args.final))
    result = neb(initial, final, images=args.images, climb=not args.no_climb, fmax=args.fmax,
                 max_steps=args.max_steps, spring=args.spring, interpolation=args.interpolation,
                 calculator=make_calculator(args), output_dir=args.output_dir)
    print_json(result.summary())
    return 0


def add_eos(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "eos",
        parents=_pick(parents, "global", "model", "compute"),
        help="equation of state",
        description="Fit E(V) with ase.eos.",
    )
    add_structure(p)
    p.add_argument("--range", type=float, default=0.06, help="volume range ± as a fraction (default 0.06)")
    p.add_argument("--points", type=int, default=9)
    p.add_argument("--eos", default="birchmurnaghan", help="ASE EOS form (default birchmurnaghan)")
    p.add_argument("--output-dir", default="eos_output")
    p.set_defaults(func=cmd_eos)


def cmd_eos(args: argparse.Namespace) -> int:
    result = eos(
        read_one(args),
        volume_range=args.range,
        points=args.points,
        eos_name=args.eos,
        calculator=make_calculator(args),
        output_dir=args.output_dir,
    )
    print_json(result.summary())
    return 0


def add_elastic(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "elastic",
        parents=_pick(parents, "global", "model", "compute"),
        help="elastic constants",
        description="The 6x6 elastic stiffness tensor (GPa, Voigt order, relaxed-ion) and the polycrystal moduli, "
        "from central differences of the stress. Relax the structure first (alignn-ase relax).",
    )
    add_structure(p)
    p.add_argument("--strain", type=float, default=0.005, help="strain magnitude (default 0.005)")
    p.add_argument("--clamped-ions", action="store_true", help="do not relax the ions in the strained cells")
    p.add_argument("--fmax", type=float, default=1e-4,
                   help="the ionic relaxations' force criterion, eV/Å (default 1e-4)")
    p.add_argument("--output-dir", default="elastic_output")
    p.set_defaults(func=cmd_elastic)


def cmd_elastic(args: argparse.Namespace) -> int:
    result = elastic(
        read_one(args),
        strain=args.strain,
        relax_ions=not args.clamped_ions,
        fmax=args.fmax,
        calculator=make_calculator(args),
        output_dir=args.output_dir,
    )
    print_json(result.summary())
    return 0


def add_predict(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "predict",
        parents=_pick(parents, "global", "model", "compute"),
        help="energy, forces, stress, properties",
        description="Energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign) and property-model outputs of "
        "every structure in the given files, written as JSON or extended XYZ.",
    )
    p.add_argument("structures", nargs="+", help="structure files; every frame of each is used")
    p.add_argument("--property", action="append", default=[], metavar="MODEL", help="property model (repeatable)")
    p.add_argument("-o", "--output", default="predictions.json", help="*.json or *.extxyz (default predictions.json)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix not in (".json", *EXTXYZ_SUFFIXES):
        raise InvalidArgumentError(f"--output must end in .json or .extxyz, got {output}")
    output = output_path(output, structures=False)
    sources = [(path, i, atoms) for path in args.structures for i, atoms in enumerate(read_structures(path, ":"))]
    try:
        results = calculate_many([a for _, _, a in sources], make_calculator(args, args.property or None))
    except InvalidStructureError as exc:
        if getattr(exc, "structure_index", None) is None:
            raise
        path, frame, _ = sources[exc.structure_index]
        raise type(exc)(f"{path}, frame {frame}: {exc}") from None
    for (path, frame, _), result in zip(sources, results):  # JSON has no NaN or infinity; extxyz should not hold them
        if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in result.values()):
            raise AlignnAseError(f"the model gave non-finite results for {path}, frame {frame}; nothing written")
    if output.suffix == ".json":
        records = [
            {"file": str(path), "index": i, "formula": atoms.get_chemical_formula(), **_jsonable(r)}
            for (path, i, atoms), r in zip(sources, results)
        ]
        units = {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å³ (Voigt xx yy zz yz xz xy, positive = tensile)",
                 "energies": "eV per atom", "properties": "the units of each property model's target"}
        output.write_text(json.dumps({"units": units, "structures": records}, indent=1, allow_nan=False) + "\n")
    else:
        write_structures(output, [_with_results(atoms, r) for (_, _, atoms), r in zip(sources, results)])
    print(f"{len(results)} structure(s) -> {output}")
    return 0


def _jsonable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in result.items()}


def _with_results(atoms: Atoms, result: dict[str, Any]) -> Atoms:
    """A copy of ``atoms`` carrying ``result``: ASE properties on a single-point calculator, property-model outputs
    (one value or vector per structure, e.g. a classifier's log-probabilities) in ``info``."""
    atoms = atoms.copy()
    standard = {k: v for k, v in result.items() if k in ("energy", "free_energy", "forces", "stress", "energies")}
    atoms.calc = SinglePointCalculator(atoms, **standard)
    for key, value in result.items():
        if key not in standard:
            atoms.info[key] = np.asarray(value).tolist()
    return atoms


def add_info(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "info",
        parents=_pick(parents, "global", "model"),
        help="a model's card",
        description="Show a model's card and settings.",
    )
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    s = model.graph_settings
    print(model.card.rstrip() if model.card else "(this model has no model card)")
    print()
    print(f"source:        {model.source}")
    print(f"architecture:  {type(model).__name__}")
    print(f"kind:          {'potential' if model.is_potential else f'property model ({model.property_name})'}")
    cap = f", max_neighbors {s.max_neighbors or 'none (no cap)'}" if s.strategy in ("pure_torch", "k-nearest") else ""
    three_body = f", three-body cutoff {s.three_body_cutoff} Å" if s.three_body_cutoff is not None else ""
    print(f"graph:         {s.strategy}, cutoff {s.cutoff} Å{cap}{three_body}")
    print(f"parameters:    {sum(p.numel() for p in model.parameters()):,}")
    print(f"shipped:       {', '.join(available_models())}")
    return 0


def add_models(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "models",
        parents=_pick(parents, "global"),
        help="list the model names --model takes",
        description="List the shipped models and upstream ALIGNN's published models (downloaded on first use to "
                    f"{upstream_dir()}).",
    )
    p.add_argument("--search", default=None, help="only names or descriptions containing this text")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    text = (args.search or "").lower()
    print("shipped (offline):")
    for name in available_models():
        if text in name.lower():
            print(f"  {name}")
    print(f"upstream ALIGNN (by name or upstream:<name>; downloaded on first use to {upstream_dir()}):")
    for name, meta in upstream_models().items():
        about = meta.get("description", "")
        if text in name.lower() or text in about.lower():
            cached = " [cached]" if cached_path(name).is_file() else ""
            print(f"  {name:<44} {about}{cached}")
    return 0


def add_check(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "check",
        parents=_pick(parents, "global", "model", "compute"),
        help="self-test a model",
        description="Check forces and stress against finite differences, stress units and sign, rotation "
        "invariance and supercell extensivity on built-in structures. Exit status 1 if any check fails.",
    )
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    dtype = args.dtype or "float64"
    scale = 1.0 if dtype == "float64" else 30.0
    results = run_checks(make_calculator(args, default_dtype=dtype), tolerance_scale=scale)
    for r in results:
        print(r.line())
    counts = {
        k: sum(r.passed is v for r in results) for k, v in (("passed", True), ("failed", False), ("skipped", None))
    }
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped ({dtype})")
    if not counts["passed"] and not counts["failed"]:
        print(f"{PROG}: error: nothing was checked: the model covers none of the built-in structures' elements",
              file=sys.stderr)
        return 1
    return 1 if counts["failed"] else 0


def add_train(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "train",
        parents=_pick(parents, "global"),
        help="train a property model or force field",
        description="Train from a YAML/JSON config (see alignn_ase.training.config). Re-running the same "
        "command resumes an interrupted run. For several processes: "
        "torchrun --nproc-per-node N -m alignn_ase.training CONFIG.",
    )
    p.add_argument("config", help="training config file (.yaml, .yml or .json)")
    p.add_argument("--no-resume", action="store_true", help="start over even if output_dir holds a checkpoint")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a config entry, e.g. --set data.path=train.extxyz --set optim.lr=5e-4 (repeatable)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .training import load_config, train

    config = load_config(args.config, args.overrides)
    if args.no_resume:
        config = replace(config, resume=False)
    result = train(config)
    if result.paused:
        print(f"paused after epoch {len(result.history)} of {config.optim.epochs} (optim.max_minutes): "
              "run the same command again to continue")
        return 0
    print(f"best model: {result.best_model}")
    for key, value in result.test_metrics.items():
        print(f"test {key}: {value:.6g}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=_pick(parents, "global", "model"),
        help="a model's errors on a labelled dataset",
        description="Test a model on every record of a labelled dataset (extxyz, ASE db, JARVIS JSON, id_prop.csv "
        "folder) as training tests its test set: metrics (a potential's with units in their names, a property "
        "model's in its target's units), predictions_test.csv and parity "
        "plots. A potential is compared with the energy (eV/atom), force (eV/Å) and stress (GPa) labels, a property "
        "model with --target (default: its own property name).",
    )
    p.add_argument("data", help="labelled dataset")
    p.add_argument("--target", default=None, help="label a property model is compared with")
    p.add_argument("--threshold", type=float, default=None,
                   help="classifiers: class 1 where the label is above this (labels are class indices without it)")
    p.add_argument("--format", default="auto",
                   help="dataset reader, as the training config's data.format (default: auto)")
    p.add_argument("--id-key", default="jid", help="record id field of JARVIS JSON / ASE db rows (default: jid)")
    p.add_argument("--energy-key", default="energy", choices=["energy", "free_energy"],
                   help="the energy label a potential is compared with (default: energy)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="(default float64)")
    p.add_argument("-o", "--output-dir", default="evaluation", help="folder for the outputs (default evaluation)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .training import evaluate_dataset

    model = load_model(args.model, args.dtype)
    if model.is_potential:
        task: dict[str, Any] = {"kind": "forcefield"}
    else:
        classes = model.num_classes
        task = {"kind": "regression" if classes is None else "classification",
                "target": args.target or model.property_name}
        if classes is not None:
            task.update(num_classes=classes, threshold=args.threshold)
    metrics = evaluate_dataset(model, args.data, task, args.output_dir, device=args.device, dtype=args.dtype,
                               energy_key=args.energy_key, format=args.format, id_key=args.id_key)
    for key, value in metrics.items():
        print(f"{key}: {value:.6g}")
    print(f"-> {args.output_dir}")
    return 0


#: every subcommand's registration function, in ``--help`` order.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction, Parents], None]] = [
    add_relax,
    add_md,
    add_phonons,
    add_qha,
    add_kappa,
    add_neb,
    add_eos,
    add_elastic,
    add_predict,
    add_info,
    add_models,
    add_check,
    add_train,
    add_evaluate,
]


# ---------------------------------------------------------------- parser and entry point


def _pick(parents: Parents, *names: str) -> list[argparse.ArgumentParser]:
    return [parents[n] for n in names]


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand's --debug/-v must not overwrite the top-level ones when not given.
    general = argparse.ArgumentParser(add_help=False)
    general.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    general.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream ALIGNN model name (see the models command; "
                       "default: default)")
    compute = argparse.ArgumentParser(add_help=False)
    compute.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    compute.add_argument(
        # default None, resolved per command: set_defaults on one subcommand would change the shared option for all
        "--dtype", choices=["float32", "float64"], default=None, help="(default float32; for check: float64)"
    )
    compute.add_argument(
        "--compile", action="store_true",
        help="run the models through torch.compile: the first call takes 5-35 s, later ones are faster (long runs)",
    )
    parents = {"global": general, "model": model, "compute": compute}

    parser = argparse.ArgumentParser(prog=PROG, description="ALIGNN models as ASE calculators: workflows.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in SUBCOMMANDS:
        add(sub, parents)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    tune_malloc()  # this process is ours: keep freed buffers (alignn_ase.allocator)
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: print(
            f"{PROG}: warning: {_one_line(message)}", file=sys.stderr
        )
        try:
            return args.func(args)
        except BrokenPipeError:  # the reader went away (``alignn-ase info | head``): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at the exit's flush
            return 128 + signal.SIGPIPE
        except (AlignnAseError, OSError, UnknownFileTypeError, FloatingPointError) as exc:  # the last: training
            if args.debug:
                raise
            print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
