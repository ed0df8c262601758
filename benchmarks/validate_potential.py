"""Validate an alignn-ase potential against real references, beside its distillation teacher.

Full run (the teacher side first, in the side venv; then our model; one thread each, niced):

    nice -n 10 /work/upvenv/bin/python benchmarks/validate_teacher.py --teacher sevenn
    nice -n 10 /work/venv/bin/python benchmarks/validate_potential.py --model potentials/<name>

(``--teacher chgnet`` puts CHGNet's numbers beside ours instead; ``--elements-from`` restricts the
elements, by default to scripts/distill/data/elements.json when it exists.) Cost, measured with the
untrained default (same architecture as the distilled one) on one core, one thread: about 40 min
of CPU (MD 23 min at 19-44 ms/step, dcdft ~12 min, lattice constants ~3 min, phonons < 1 min);
wall time is longer on a loaded machine (3-4x on this shared 2-core one).

Smoke test of this script (3 elements, 0.2 ps of MD; writes validation_<name>_quick.*; ~1 min):

    nice -n 10 /work/venv/bin/python benchmarks/validate_potential.py --model default --quick

What is measured (protocol shared with the teacher in ``validation_protocol.py``; see
benchmarks/VALIDATION.md):

1. ``ase.collections.dcdft`` by the Delta-codes protocol behind its WIEN2k numbers: for every dcdft
   element the model covers, the dcdft structure is scaled uniformly (shape and fractional coordinates
   fixed, nothing relaxed) over ±6 % of its volume in 7 points and fitted with Birch–Murnaghan:
   V0 (Å³/atom), B0 (GPa), B′ vs WIEN2k and vs the teacher.
2. Lattice constants of the elemental solids in ASE's fcc/bcc/diamond/hcp reference states
   (``ase.data.reference_states``), relaxed (FIRE + FrechetCellFilter + FixSymmetry, fmax 0.005 eV/Å):
   a (Å), and c and c/a for hcp; the MAE runs over a and the hcp c.
3. Si phonons: relaxed primitive Si, ``alignn_ase.phonons`` (phonopy, 2-atom cell x (4, 4, 4) =
   128 atoms, 0.01 Å displacements): Γ optical and X-point TA frequencies (THz) vs experiment
   (15.5 and 4.5 THz) and the teacher (``ase.phonons`` on the same supercell).
4. Cubic elastic constants C11, C12, C44 (GPa) of the crystals of ``validation_protocol.ELASTIC_CRYSTALS``
   whose elements the model covers (elemental, rock-salt and zinc-blende crystals): strain-stress central
   differences at ±0.5 % with the ions relaxed, vs the teacher and, for six elements, room-temperature experiment.
5. Stability: ``alignn_ase.run_md``, Langevin NVT at 1000 K (friction 0.01/fs), 1 fs steps,
   10 ps (``--md-ps``), from the ideal crystal at the experimental lattice constant: Si (64 atoms),
   Cu (32), NaCl (64), SrTiO3 (40) and α-Al2O3 (30, the hexagonal cell). Reported: whether the watchdog fired
   (non-finite energies/forces, atoms closer than 0.5 Å, T above 11000 K), the mean temperature
   over the second half, the largest atomic force seen (logged frames, every 10 fs), the RMS
   displacement of the atoms from their starting sites over the second half (does the crystal
   hold?), the total-energy drift of 1 ps of NVE continuing from the end state, the wall time and
   the time per step.

Statics (1-3) run in float64, MD in float32 (what a user runs). Every element and system is
measured on its own: a failure is recorded with its error and the run goes on. The JSON and
markdown results (benchmarks/results/validation_<name>.{json,md}) are rewritten after every
element and system, and each MD run streams its md.csv into ``--workdir``, so a long run can be
inspected while it goes. The teacher's numbers come from
benchmarks/results/validation_teacher_<teacher>.json (default teacher: the one chosen in
scripts/distill/results/teacher_choice.json).

Parallel runs: ``--parts`` (dcdft, lattice, si_phonons, elastic, stability) and ``--systems`` pick what one
process measures; each process merges its results into the same JSON/markdown under a file lock,
keeping what other runs measured with the same weights (SHA-256 of the state dict) and MD length.
For example, on two cores:

    ... validate_potential.py --model potentials/<name> --parts dcdft lattice si_phonons stability --systems Si Cu &
    ... validate_potential.py --model potentials/<name> --parts stability --systems NaCl SrTiO3 Al2O3 &
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk
from ase.data import chemical_symbols
from ase.io import read
from ase.spacegroup import crystal

import validation_protocol as vp
from alignn_ase import ALIGNNCalculator
from alignn_ase.errors import SimulationError
from alignn_ase.io import load_model
from alignn_ase.nn.base import ALIGNNModel
from alignn_ase.workflows import phonons, run_md

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ELEMENTS_FILE = ROOT / "scripts" / "distill" / "data" / "elements.json"
TEACHER_CHOICE = ROOT / "scripts" / "distill" / "results" / "teacher_choice.json"
MD_TEMPERATURE_K = 1000.0
MD_TIMESTEP_FS = 1.0
MD_LOG_INTERVAL = 10
NVE_STEPS = 1000  # 1 ps of NVE from each stability run's end state
QUICK_MD_PS = 0.2

log = logging.getLogger("validate_potential")


def _perovskite(a: float) -> Atoms:
    """Cubic SrTiO3 (5 atoms) with lattice constant ``a`` (Å)."""
    return Atoms(
        "SrTiO3",
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=[a, a, a],
        pbc=True,
    )


def _corundum() -> Atoms:
    """α-Al2O3 (R-3c, 30-atom hexagonal cell; experimental a = 4.759 Å, c = 12.991 Å)."""
    return crystal(
        ["Al", "O"],
        basis=[(0.0, 0.0, 0.3522), (0.3064, 0.0, 0.25)],
        spacegroup=167,
        cellpar=[4.759, 4.759, 12.991, 90, 90, 120],
    )


#: stability systems: name -> (builder of the starting cell at the experimental lattice constant, description)
STABILITY_SYSTEMS: dict[str, tuple[Callable[[], Atoms], str]] = {
    "Si": (lambda: bulk("Si", "diamond", a=5.431, cubic=True) * (2, 2, 2), "diamond, a = 5.431 Å"),
    "Cu": (lambda: bulk("Cu", "fcc", a=3.615, cubic=True) * (2, 2, 2), "fcc, a = 3.615 Å"),
    "NaCl": (lambda: bulk("NaCl", "rocksalt", a=5.640, cubic=True) * (2, 2, 2), "rocksalt, a = 5.640 Å"),
    "SrTiO3": (lambda: _perovskite(3.905) * (2, 2, 2), "cubic perovskite, a = 3.905 Å"),
    "Al2O3": (_corundum, "corundum, a = 4.759 Å, c = 12.991 Å"),
}


def model_name(spec: str) -> str:
    """A file-name-safe name of the model: the shipped name, or the folder (zip) name of a path."""
    if spec == "default":
        from alignn_ase.potentials import DEFAULT

        return DEFAULT
    path = Path(spec)
    return path.stem if path.suffix == ".zip" else path.resolve().name if path.exists() else path.name


def model_elements(model: ALIGNNModel, elements_file: Path | None) -> list[str]:
    """Elements the model accepts, restricted to those listed in ``elements_file`` (a JSON list of
    symbols, or an object with an ``"elements"`` list or symbol keys) when given."""
    known = [chemical_symbols[int(z)] for z in torch.nonzero(model._known_elements).flatten()]
    if elements_file is None:
        return known
    data = json.loads(elements_file.read_text())
    if isinstance(data, dict):
        data = data.get("elements", data)
    listed = set(data)
    bad = sorted(s for s in listed if s not in chemical_symbols)
    if bad:
        raise ValueError(f"{elements_file}: not element symbols: {bad[:5]}")
    missing = sorted(listed - set(known))
    if missing:
        log.warning("%s lists elements the model does not accept (skipped): %s", elements_file, missing)
    return [s for s in known if s in listed]


def teacher_name(requested: str | None) -> str:
    """The teacher whose numbers go beside ours: ``requested``, else the distillation's chosen one, else chgnet."""
    if requested:
        return requested
    if TEACHER_CHOICE.is_file():
        return json.loads(TEACHER_CHOICE.read_text())["chosen"]
    return "chgnet"


def si_phonons(model: ALIGNNModel, workdir: Path) -> dict[str, Any]:
    """Relaxed primitive Si, phonopy phonons (128-atom supercell): Γ and X frequencies (THz) vs experiment."""
    calc = ALIGNNCalculator(model, dtype="float64")
    atoms = vp.si_primitive()
    relaxation = vp.relax(atoms, calc)
    atoms.set_constraint()
    result = phonons(
        atoms,
        supercell=vp.SI_PHONON_SUPERCELL,
        displacement=vp.SI_PHONON_DISPLACEMENT,
        calculator=calc,
        output_dir=workdir / "si_phonons",
        primitive_matrix=None,
    )
    ph = result.phonopy
    ph.run_qpoints([np.zeros(3), vp.fcc_x_point(atoms)])
    freqs = ph.qpoints.frequencies
    out = vp.si_phonon_summary(freqs[0], freqs[1], float(np.cbrt(4.0 * atoms.get_volume())))
    out.update(
        method=f"alignn_ase.phonons (phonopy), primitive cell x {vp.SI_PHONON_SUPERCELL}, "
        f"displacement {vp.SI_PHONON_DISPLACEMENT} Å",
        relax=relaxation,
        stable=result.stable,
        n_imaginary_qpoints=len(result.imaginary_modes),
        lowest_imaginary_THz=result.imaginary_modes[0][0] if result.imaginary_modes else None,
        plot=str(result.files.get("band_dos_plot")),
    )
    return out


def stability(name: str, model: ALIGNNModel, md_ps: float, workdir: Path) -> dict[str, Any]:
    """``md_ps`` ps of Langevin NVT at 1000 K for stability system ``name``; never raises SimulationError."""
    build, description = STABILITY_SYSTEMS[name]
    atoms = build()
    model.check_elements(torch.as_tensor(atoms.numbers))  # an uncovered element is an error, not a watchdog stop
    steps = int(round(md_ps * 1000.0 / MD_TIMESTEP_FS))
    out_dir = workdir / "md" / name
    out: dict[str, Any] = {
        "atoms": len(atoms),
        "structure": description,
        "steps_requested": steps,
        "watchdog_fired": False,
    }
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = None
    try:
        result = run_md(
            atoms,
            ensemble="nvt_langevin",
            temperature_K=MD_TEMPERATURE_K,
            steps=steps,
            timestep_fs=MD_TIMESTEP_FS,
            trajectory="md.traj",
            log_interval=MD_LOG_INTERVAL,
            output_dir=out_dir,
            calculator=ALIGNNCalculator(model),
            seed=0,
        )
    except SimulationError as exc:
        out["watchdog_fired"] = True
        out["watchdog_message"] = str(exc)[:300]
    out["wall_s"] = time.perf_counter() - t0
    with open(out_dir / "md.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    logged_steps = np.array([float(r["step"]) for r in rows])
    temperature = np.array([float(r["temperature_K"]) for r in rows])
    out["steps_completed"] = int(logged_steps[-1]) if len(rows) else 0
    out["time_ps"] = out["steps_completed"] * MD_TIMESTEP_FS / 1000.0
    out["mean_temperature_K_second_half"] = float(temperature[len(temperature) // 2 :].mean()) if len(rows) else None
    frames = read(out_dir / "md.traj", index=":") if (out_dir / "md.traj").is_file() else []
    forces = [np.linalg.norm(f.get_forces(), axis=1).max() for f in frames]
    out["max_force_eV_per_A"] = float(max(forces)) if forces else None
    out["cpu_s"] = time.process_time() - cpu0
    out["ms_per_step"] = 1e3 * out["wall_s"] / max(out["steps_completed"], 1)
    out["cpu_ms_per_step"] = 1e3 * out["cpu_s"] / max(out["steps_completed"], 1)
    out["csv"] = str(out_dir / "md.csv")
    if frames:
        out["rms_displacement_A_second_half"] = rms_displacement(frames[0], frames[len(frames) // 2 :])
    if result is not None:  # the NVT end state, continued without thermostat: is energy conserved?
        nve = run_md(result.atoms, ensemble="nve", steps=NVE_STEPS, timestep_fs=MD_TIMESTEP_FS, init_velocities=False,
                     log_interval=MD_LOG_INTERVAL, output_dir=None, calculator=ALIGNNCalculator(model), progress=False)
        out.update({f"nve_{k}": v for k, v in nve.energy_drift().items()})
    out["passed"] = not out["watchdog_fired"] and out["steps_completed"] == steps
    return out


def rms_displacement(start: Atoms, frames: list[Atoms]) -> float:
    """Root-mean-square distance (Å) of the atoms from their starting sites over ``frames``, the drift of the
    centre of mass removed: a few tenths of an Å for a hot crystal, growing without bound for a liquid."""
    squares = []
    for frame in frames:
        d = frame.positions - start.positions
        d -= d.mean(axis=0)
        squares.append(np.mean(np.sum(d**2, axis=1)))
    return float(np.sqrt(np.mean(squares)))


def _fmt(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, or an em dash when missing."""
    return "—" if value is None else format(value, spec)


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(payload: dict[str, Any]) -> str:
    """The results as markdown tables (ours beside the teacher's beside the reference)."""
    ours, teacher = payload["results"], payload.get("teacher") or {}
    tname = teacher.get("label", f"{payload['teacher_name']} (no results file)")
    lines = [
        f"# Validation of `{payload['model']}`",
        "",
        f"Model: `{payload['model_source']}`. Teacher: {tname}. Measured by `{payload['command']}` "
        f"({payload['started']}, {payload['machine']}, torch threads {payload['torch_threads']}); "
        "protocol in benchmarks/VALIDATION.md.",
        "",
        "Wall time per part (s): " + ", ".join(f"{k} {v:.0f}" for k, v in payload["wall_s"].items())
        + "; CPU time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in payload["cpu_s"].items()) + ".",
        "",
    ]
    lines += _dcdft_table(ours["dcdft"], teacher.get("dcdft", {}))
    lines += _lattice_table(ours["lattice"], teacher.get("lattice", {}))
    lines += _phonon_table(ours.get("si_phonons"), teacher.get("si_phonons"))
    lines += _elastic_table(ours.get("elastic") or {}, teacher.get("elastic") or {})
    lines += _stability_table(ours["stability"], payload["md_ps"])
    return "\n".join(lines) + "\n"


def _errors(title: str, entries: dict[str, dict[str, Any]]) -> list[str]:
    failed = {k: v["error"] for k, v in entries.items() if "error" in v}
    return [f"{title} failures: " + "; ".join(f"{k}: {v}" for k, v in failed.items()), ""] if failed else []


def _dcdft_table(ours: dict, teacher: dict) -> list[str]:
    lines = [
        "## Elemental solids vs WIEN2k (ase.collections.dcdft)",
        "",
        "Delta-codes protocol: the dcdft structure scaled uniformly (shape and fractional coordinates fixed) "
        "over ±6 % of its volume in 7 points, Birch–Murnaghan fit. "
        "V0 in Å³/atom, B0 in GPa, B′ = dB/dP at V0; Δ in % relative to WIEN2k; \"ours vs T\" in % relative to "
        "the teacher. \\* = the fitted V0 lies outside the scanned volumes (an extrapolation); \"flat E(V)\": "
        "energy constant over the scan (no neighbour within the cut-off), not fitted. MAE over the elements where "
        "both ours and the teacher have a result (all of ours without teacher results); percentages weigh soft "
        "solids (B0 < 10 GPa: an error of 2 GPa is 20-60 %) heavily, so the B0 MAE is given in GPa too.",
        "",
        "| element | WIEN2k V0 | WIEN2k B0 | WIEN2k B′ | teacher V0 | teacher B0 | teacher B′ | ours V0 | ours B0 "
        "| ours B′ | teacher ΔV0 % | teacher ΔB0 % | ours ΔV0 % | ours ΔB0 % | ours vs T V0 % | ours vs T B0 % |",
        "|---|" + "---:|" * 15,
    ]
    common: dict[str, tuple[dict, dict]] = {}
    for el, o in ours.items():
        ref, t = vp.dcdft_reference(el), teacher.get(el, {})
        ok_o, ok_t = vp.eos_usable(o), vp.eos_usable(t)
        vs_t = (vp.pct(o["V0"], t["V0"]), vp.pct(o["B0"], t["B0"])) if ok_o and ok_t else (None, None)
        if ok_o and (ok_t or not teacher):
            common[el] = (o, t | {"vs_V0": vs_t[0], "vs_B0": vs_t[1]})
        t_v0, t_b0, t_bp, t_dv, t_db = _eos_cells(t, bool(teacher))
        o_v0, o_b0, o_bp, o_dv, o_db = _eos_cells(o, True)
        lines.append(_row([
            el, f"{ref['V0']:.2f}", f"{ref['B0']:.1f}", f"{ref['Bp']:.2f}", t_v0, t_b0, t_bp, o_v0, o_b0, o_bp,
            t_dv, t_db, o_dv, o_db, _fmt(vs_t[0], "+.1f"), _fmt(vs_t[1], "+.1f"),
        ]))
    solids = {el: c for el, c in common.items() if el not in vp.MOLECULAR_CRYSTALS}
    in_scan = {el: c for el, c in common.items() if c[0]["V0_in_scan"] and c[1].get("V0_in_scan", True)}
    groups = (("**MAE**", common), ("**MAE**, no molecular/noble-gas crystals", solids),
              ("**MAE**, fits inside the scan only (no \\*)", in_scan))
    for label, group in groups:
        os_, ts = [c[0] for c in group.values()], [c[1] for c in group.values()]
        lines.append(_row([
            f"{label} ({len(group)} el.)", "", "", "", "", "", "", "", "", "",
            _fmt(vp.mae(ts, "V0_err_pct"), ".2f"), _fmt(vp.mae(ts, "B0_err_pct"), ".1f"),
            _fmt(vp.mae(os_, "V0_err_pct"), ".2f"), _fmt(vp.mae(os_, "B0_err_pct"), ".1f"),
            _fmt(vp.mae(ts, "vs_V0"), ".2f"), _fmt(vp.mae(ts, "vs_B0"), ".1f"),
        ]))
    gpa = {who: [abs(c[i]["B0"] - vp.dcdft_reference(el)["B0"]) for el, c in common.items() if "B0" in c[i]]
           for i, who in enumerate(("ours", "teacher"))}
    lines += ["", "B0 MAE vs WIEN2k in GPa, same elements: " + ", ".join(
        f"{who} {np.mean(v):.1f} GPa ({len(v)} el.)" for who, v in gpa.items() if v) + "."]
    return lines + [""] + _errors("dcdft", ours)


def _eos_cells(entry: dict, present: bool) -> tuple[str, str, str, str, str]:
    """V0, B0, B′, ΔV0 %, ΔB0 % table cells of one dcdft entry: "failed" / "flat E(V)" / "—" when not usable."""
    if not vp.eos_usable(entry):
        note = "—" if not present or not entry else "flat E(V)" if "V0" in entry else "failed"
        return note, "—", "—", "—", "—"
    star = "" if entry["V0_in_scan"] else "\\*"
    return (
        f"{entry['V0']:.2f}{star}", f"{entry['B0']:.1f}", f"{entry['Bp']:.2f}", f"{entry['V0_err_pct']:+.1f}",
        f"{entry['B0_err_pct']:+.1f}",
    )


def _lattice_table(ours: dict, teacher: dict) -> list[str]:
    lines = [
        "## Lattice constants of elemental solids vs ASE's reference states",
        "",
        "Conventional a in Å (hcp: a of the hexagonal cell, and c/a); reference: `ase.data.reference_states` "
        "(mostly experimental, room temperature). MAE over every lattice parameter (a, and c for hcp) of the "
        "elements where both have a result (all of ours without teacher results); \"flat E(V)\": energy independent of the volume (no neighbour "
        "within the cut-off), so a is the starting value, not a result.",
        "",
        "| element | structure | ASE a | teacher a | ours a | teacher Δa % | ours Δa % "
        "| ASE c/a | teacher c/a | ours c/a | teacher Δc % | ours Δc % |",
        "|---|---|" + "---:|" * 10,
    ]
    common: dict[str, tuple[dict, dict]] = {}
    for el, o in ours.items():
        ref, t = vp.lattice_reference(el), teacher.get(el, {})
        usable = vp.lattice_usable(o)
        if usable and (vp.lattice_usable(t) or not teacher):
            common[el] = (o, t)
        t_ok = vp.lattice_usable(t)
        ours_a = _fmt(o["a"], ".3f") if usable else "flat E(V)" if "a" in o else "failed"
        teacher_a = _fmt(t.get("a"), ".3f") if t_ok or "a" not in t else "flat E(V)"
        lines.append(_row([
            el, ref["structure"], f"{ref['a']:.3f}", teacher_a, ours_a,
            _fmt(t.get("a_err_pct"), "+.2f") if t_ok else "—", _fmt(o.get("a_err_pct"), "+.2f") if usable else "—",
            _fmt(ref.get("c/a"), ".3f"), _fmt(t.get("c/a"), ".3f"), _fmt(o.get("c/a"), ".3f"),
            _fmt(_c_err(t), "+.2f") if t_ok else "—", _fmt(_c_err(o), "+.2f") if usable else "—",
        ]))
    solids = {el: c for el, c in common.items() if el not in vp.MOLECULAR_CRYSTALS}
    for label, group in (("**MAE**", common), ("**MAE**, no noble-gas crystals", solids)):
        lines.append(_row([
            f"{label} ({len(group)} el., a and c)", "", "", "", "",
            _fmt(vp.lattice_mae(c[1] for c in group.values()), ".2f"),
            _fmt(vp.lattice_mae(c[0] for c in group.values()), ".2f"), "", "", "", "", "",
        ]))
    return lines + [""] + _errors("lattice", ours)


def _c_err(entry: dict) -> float | None:
    """The error (%) of an hcp entry's c, else None."""
    errors = vp.lattice_errors(entry) if "a_err_pct" in entry else []
    return errors[1] if len(errors) > 1 else None


def _phonon_table(ours: dict | None, teacher: dict | None) -> list[str]:
    ours, teacher = ours or {}, teacher or {}
    lines = [
        "## Si phonons",
        "",
        "Relaxed primitive Si, finite displacements (0.01 Å) in the 2-atom cell x (4, 4, 4) (128 atoms); "
        "ours: phonopy (`alignn_ase.phonons`), teacher: `ase.phonons`. Frequencies in THz.",
        "",
        "| quantity | experiment | teacher | ours | teacher Δ % | ours Δ % |",
        "|---|---:|---:|---:|---:|---:|",
        _row(["a (Å)", "5.431", _fmt(teacher.get("a"), ".3f"), _fmt(ours.get("a"), ".3f"), "", ""]),
    ]
    for key, label in (("gamma_optical", "Γ optical"), ("x_ta", "X TA")):
        lines.append(_row([
            label, f"{vp.SI_PHONONS_EXPERIMENT_THZ[key]:.1f}",
            _fmt(teacher.get(key), ".2f"), _fmt(ours.get(key), ".2f"),
            _fmt(teacher.get(f"{key}_err_pct"), "+.1f"), _fmt(ours.get(f"{key}_err_pct"), "+.1f"),
        ]))
    lines += [_row(["all X modes", "4.5, 4.5, 12.3, 12.3, 13.9, 13.9", _x_modes(teacher), _x_modes(ours), "", ""]), ""]
    if "stable" in ours:
        lines += [
            f"Ours: dynamically stable on the band path and mesh: {ours['stable']} "
            f"({ours['n_imaginary_qpoints']} q-points with imaginary modes).",
            "",
        ]
    return lines + _errors("Si phonons", {k: v for k, v in (("ours", ours), ("teacher", teacher)) if v})


def _elastic_table(ours: dict, teacher: dict) -> list[str]:
    lines = [
        "## Cubic elastic constants",
        "",
        f"Conventional cubic cell relaxed, strained by ±{vp.ELASTIC_STRAIN} (xx; engineering shear yz), ions relaxed "
        "at fixed cell; C11, C12, C44 from central differences of the stress (GPa). Experiment: room temperature, "
        "Kittel's tables, where listed. MAE vs the teacher: mean |ours - teacher| / teacher over the three constants "
        "of every crystal both have.",
        "",
        "| crystal | a (Å) teacher / ours | C11 exp / teacher / ours | C12 exp / teacher / ours "
        "| C44 exp / teacher / ours | B teacher / ours |",
        "|---|---|---|---|---|---|",
    ]
    pairs = []  # (ours, teacher) of every constant both have
    for name, o in ours.items():
        if "error" in o:
            lines.append(_row([name, "error", "", "", "", ""]))
            continue
        t, exp = teacher.get(name, {}), vp.ELASTIC_EXPERIMENT_GPA.get(name, {})
        cells = [name, f"{_fmt(t.get('a'), '.3f')} / {o['a']:.3f}"]
        for key in (*vp.ELASTIC_KEYS, "B"):
            ref = [_fmt(exp.get(key), ".0f")] if key != "B" else []
            cells.append(" / ".join([*ref, _fmt(t.get(key), ".0f"), f"{o[key]:.0f}"]))
            if key != "B" and t.get(key):
                pairs.append((o[key], t[key]))
        lines.append(_row(cells))
    lines.append("")
    if pairs:
        o_c, t_c = np.array(pairs).T
        rel = np.abs(o_c - t_c) / np.abs(t_c)
        lines += [
            f"MAE vs the teacher over {len(pairs)} constants: {100 * rel.mean():.1f} % (the mean of the relative "
            f"errors, which a constant near zero dominates); median {100 * np.median(rel):.1f} %; "
            f"Σ|ours - teacher| / Σ|teacher| {100 * np.abs(o_c - t_c).sum() / np.abs(t_c).sum():.1f} %; "
            f"MAE {np.abs(o_c - t_c).mean():.1f} GPa.",
            "",
        ]
    unstable = {who: [f"{name} ({why})" for name, entry in results.items() if (why := _born_violations(entry))]
                for who, results in (("ours", ours), ("teacher", teacher))}
    lines += ["Mechanically unstable by Born's criteria for cubic crystals (C11 - C12 > 0, C44 > 0, C11 + 2 C12 > 0): "
              + "; ".join(f"{who}: {', '.join(v) or 'none'}" for who, v in unstable.items()) + ".", ""]
    return lines + _errors("elastic", ours)


def _born_violations(entry: dict) -> str:
    """Which of Born's stability conditions for a cubic crystal ``entry`` (C11, C12, C44 in GPa) violates, as text;
    empty when it is stable or has no constants."""
    if not all(k in entry for k in vp.ELASTIC_KEYS):
        return ""
    c11, c12, c44 = (entry[k] for k in vp.ELASTIC_KEYS)
    tests = {"C11 - C12": c11 - c12, "C44": c44, "C11 + 2 C12": c11 + 2 * c12}
    return ", ".join(f"{k} = {v:.0f}" for k, v in tests.items() if not v > 0)


def _x_modes(result: dict) -> str:
    """The X-point frequencies (THz) of a phonon result, comma-separated."""
    return ", ".join(f"{f:.2f}" for f in result["x_THz"]) if "x_THz" in result else "—"


def _stability_table(ours: dict, md_ps: float) -> list[str]:
    lines = [
        "## Stability: NVT at 1000 K",
        "",
        f"Langevin NVT (friction 0.01/fs), 1000 K, 1 fs steps, {md_ps:g} ps requested, from the ideal crystal at the "
        "experimental lattice constant, float32. Watchdog: non-finite energy/forces, atoms closer than 0.5 Å, "
        "T > 11000 K. ps done, mean T over the second half and max |F| from the frames logged every 10 fs; "
        "RMS displacement: of the atoms from their starting sites over the second half (centre-of-mass drift "
        "removed; a few tenths of an Å for a hot crystal, growing for a liquid); NVE drift: least-squares slope of "
        f"the total energy over {NVE_STEPS * MD_TIMESTEP_FS / 1000:g} ps of NVE continuing from the run's end state, "
        "± its standard error (logged points taken as independent), and the energy's fluctuation about that line.",
        "",
        "| system | atoms | structure | ps done | watchdog fired | mean T (K) | max \\|F\\| (eV/Å) "
        "| RMS displacement (Å) | NVE drift (eV/atom/ps) | NVE fluctuation (eV/atom) | wall (s) | ms/step (wall) "
        "| ms/step (CPU) |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in ours.items():
        if "error" in r:
            lines.append(_row([name, "", "", "", "error", "", "", "", "", "", "", "", ""]))
            continue
        lines.append(_row([
            name, r["atoms"], r["structure"], f"{r['time_ps']:g}", "**yes**" if r["watchdog_fired"] else "no",
            _fmt(r["mean_temperature_K_second_half"], ".0f"), _fmt(r["max_force_eV_per_A"], ".2f"),
            _fmt(r.get("rms_displacement_A_second_half"), ".2f"), _drift(r), _fmt(r.get("nve_fluctuation_eV_per_atom"), ".1e"),
            f"{r['wall_s']:.0f}", f"{r['ms_per_step']:.1f}", f"{r['cpu_ms_per_step']:.1f}",
        ]))
    fired = {k: v["watchdog_message"] for k, v in ours.items() if v.get("watchdog_fired")}
    lines.append("")
    if fired:
        lines += ["Watchdog: " + "; ".join(f"{k}: {v}" for k, v in fired.items()), ""]
    return lines + _errors("stability", ours)


def _digest(model: ALIGNNModel) -> str:
    """SHA-256 of the model's parameters and buffers (identifies the weights, whatever the path)."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


PARTS = ("dcdft", "lattice", "si_phonons", "elastic", "stability")


def _drift(r: dict[str, Any]) -> str:
    """The NVE drift cell: slope ± standard error, or the slope alone for results measured before the error was."""
    drift, stderr = r.get("nve_drift_eV_per_atom_per_ps"), r.get("nve_drift_stderr_eV_per_atom_per_ps")
    return _fmt(drift, ".1e") if stderr is None else f"{drift:.1e} ± {stderr:.0e}"


def _merge_earlier(path: Path, payload: dict[str, Any], parts: list[str], systems: list[str]) -> dict[str, Any]:
    """``payload`` on top of the results an earlier or concurrent run left in ``path``.

    Parts not in ``parts`` (and stability systems not in ``systems``) come from the file, when it
    was written for the same weights (``model_digest``) and MD length; everything else is this run's.
    """
    if not path.is_file():
        return payload
    earlier = json.loads(path.read_text())
    if earlier.get("model_digest") != payload["model_digest"] or earlier.get("md_ps") != payload["md_ps"]:
        return payload
    merged = {**payload, "results": dict(payload["results"]), "wall_s": dict(earlier.get("wall_s", {})),
              "cpu_s": dict(earlier.get("cpu_s", {}))}
    merged["wall_s"].update(payload["wall_s"])
    merged["cpu_s"].update(payload["cpu_s"])
    merged["command"] = "; ".join(dict.fromkeys([*earlier.get("command", "").split("; "), payload["command"]]))
    for key in PARTS:
        if key not in parts:
            merged["results"][key] = earlier["results"].get(key, merged["results"][key])
    if "stability" in parts:
        kept = {k: v for k, v in (earlier["results"].get("stability") or {}).items() if k not in systems}
        merged["results"]["stability"] = {**kept, **payload["results"]["stability"]}
    return merged


def main() -> None:
    """Run every part for one model, merge the teacher's results, write JSON + markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="shipped name or path (default: the shipped default)")
    parser.add_argument(
        "--elements-from", type=Path, default=DEFAULT_ELEMENTS_FILE if DEFAULT_ELEMENTS_FILE.is_file() else None,
        help="JSON list of the model's training elements (default scripts/distill/data/elements.json if present)",
    )
    parser.add_argument("--teacher", choices=("chgnet", "sevenn"), help="default: the distillation's chosen teacher")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: {', '.join(vp.QUICK_ELEMENTS)}, "
                        f"{QUICK_MD_PS} ps of MD, writes validation_<name>_quick.*")
    parser.add_argument("--md-ps", type=float, default=10.0, help="ps of MD per stability system (default 10)")
    parser.add_argument("--workdir", type=Path, help="MD logs, trajectories and phonon files "
                        "(default <tmp>/alignn_ase_validation/<name>)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="run only these parts; the others are kept from an earlier run's JSON, so several "
                        "processes with different --parts/--systems fill one result file (default: all)")
    parser.add_argument("--systems", nargs="+", choices=list(STABILITY_SYSTEMS), default=list(STABILITY_SYSTEMS),
                        help="stability systems to run (default: all)")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: rewrite the markdown from the model's result JSON and the teacher's")
    args = parser.parse_args()
    if args.render:
        out_json = vp.RESULTS / f"validation_{model_name(args.model)}{'_quick' if args.quick else ''}.json"
        payload = json.loads(out_json.read_text())
        teacher_file = vp.RESULTS / f"validation_teacher_{payload['teacher_name']}.json"
        payload["teacher"] = json.loads(teacher_file.read_text()) if teacher_file.is_file() else None
        out_json.with_suffix(".md").write_text(markdown(payload))
        print(f"wrote {out_json.with_suffix('.md')}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)

    model = load_model(args.model)
    name = model_name(args.model)
    elements = model_elements(model, args.elements_from)
    md_ps = QUICK_MD_PS if args.quick else args.md_ps
    if args.quick:
        elements = [e for e in elements if e in vp.QUICK_ELEMENTS]
    suffix = "_quick" if args.quick else ""
    workdir = args.workdir or Path(tempfile.gettempdir()) / "alignn_ase_validation" / f"{name}{suffix}"
    workdir.mkdir(parents=True, exist_ok=True)
    tname = teacher_name(args.teacher)
    teacher_file = vp.RESULTS / f"validation_teacher_{tname}.json"
    if not teacher_file.is_file():
        log.warning("no teacher results at %s: run benchmarks/validate_teacher.py --teacher %s", teacher_file, tname)
    out_json, out_md = vp.RESULTS / f"validation_{name}{suffix}.json", vp.RESULTS / f"validation_{name}{suffix}.md"
    payload: dict[str, Any] = {
        "model": name,
        "model_source": model.source,
        "model_digest": _digest(model),
        "command": vp.command_line(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "torch_threads": torch.get_num_threads(),
        "elements": elements,
        "md_ps": md_ps,
        "workdir": str(workdir),
        "teacher_name": tname,
        "teacher": None,
        "wall_s": {},
        "cpu_s": {},
        "results": {"dcdft": {}, "lattice": {}, "si_phonons": None, "elastic": {}, "stability": {}},
    }
    results = payload["results"]
    log.info("validating %s (%d elements) against references and teacher %s; files in %s", name, len(elements), tname,
             workdir)

    def save() -> None:
        # the teacher file is re-read at every save: a teacher run still going shows up as it progresses
        payload["teacher"] = json.loads(teacher_file.read_text()) if teacher_file.is_file() else None
        with open(Path(tempfile.gettempdir()) / f"{out_json.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other processes may be filling other parts of the same file
            merged = _merge_earlier(out_json, payload, args.parts, args.systems)
            vp.write_json(out_json, merged)
            out_md.write_text(markdown(merged))

    def part(key: str, run: Callable[[], None]) -> None:
        t0, cpu0 = time.perf_counter(), time.process_time()
        run()
        payload["wall_s"][key] = time.perf_counter() - t0
        payload["cpu_s"][key] = time.process_time() - cpu0
        save()

    def statics() -> ALIGNNCalculator:
        return ALIGNNCalculator(model, dtype="float64")

    runners: dict[str, Callable[[], None]] = {
        "dcdft": lambda: vp.survey(vp.dcdft_elements(elements), lambda s: vp.dcdft_eos(s, statics()),
                                   "dcdft EOS", results["dcdft"], save),
        "lattice": lambda: vp.survey(vp.lattice_elements(elements), lambda s: vp.lattice_constant(s, statics()),
                                     "lattice", results["lattice"], save),
    }
    phonon_store: dict[str, Any] = {}

    def run_phonons() -> None:
        vp.survey(["Si"], lambda _: si_phonons(model, workdir), "Si phonons", phonon_store, save)
        results["si_phonons"] = phonon_store["Si"]
        plot = phonon_store["Si"].get("plot")
        if plot and Path(plot).is_file():
            shutil.copy(plot, vp.RESULTS / f"validation_{name}{suffix}_si_phonons.png")

    runners["si_phonons"] = run_phonons
    runners["elastic"] = lambda: vp.survey(vp.elastic_crystals(elements), lambda s: vp.elastic_constants(s, statics()),
                                           "elastic", results["elastic"], save)
    runners["stability"] = lambda: vp.survey(args.systems, lambda s: stability(s, model, md_ps, workdir),
                                             "stability MD", results["stability"], save)
    for key in args.parts:
        part(key, runners[key])
    payload["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    save()
    log.info("wrote %s and %s", out_json, out_md)


if __name__ == "__main__":
    main()
