"""NVT then NVE molecular dynamics of copper at 300 K, with an energy-vs-time plot.

    python examples/md_cu_nvt_nve.py [--out examples_output/md_cu] [--model default]

Relaxes the fcc cell, then runs a 3x3x3 supercell (108 atoms) with a 2 fs time step
(copper's fastest phonons last ~130 fs): 600 fs of Langevin NVT at 300 K, then 600 fs of
NVE from the final NVT state (velocities kept). Writes each phase's
CSV log and trajectory, and ``md_cu.png``: total and potential energy per atom,
and temperature, vs time, with the NVT/NVE switch marked. In NVE the total energy
should stay flat. The shipped default potential is a small distillation of
SevenNet-0 (Cu lattice constant within 0.2 % of the teacher's; see its model card).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ase.build import bulk
from matplotlib.figure import Figure

from alignn_ase import ALIGNNCalculator, relax, run_md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples_output/md_cu", type=Path)
    parser.add_argument("--model", default="default", help="shipped model name, checkpoint path or upstream model name")
    parser.add_argument("--steps", type=int, default=300, help="steps of each phase (2 fs each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    calc = ALIGNNCalculator(args.model)

    cell = relax(bulk("Cu", "fcc", a=3.6, cubic=True), fmax=0.01, calculator=calc).atoms
    options = dict(
        temperature_K=300, steps=args.steps, timestep_fs=2.0, log_interval=5, trajectory="md.traj", calculator=calc
    )
    nvt = run_md(cell.repeat(3), "nvt_langevin", friction_per_fs=0.02, output_dir=args.out / "nvt", **options)
    nve = run_md(nvt.atoms, "nve", init_velocities=False, output_dir=args.out / "nve", **options)

    n = len(nvt.atoms)
    fig = Figure(figsize=(9, 3.5), layout="tight")
    ax_e, ax_t = fig.subplots(1, 2)
    for phase, result, offset in (("NVT", nvt, 0.0), ("NVE", nve, nvt.time_fs[-1])):
        t = result.time_fs + offset
        ax_e.plot(t, result.total_energy / n, label=f"total ({phase})")
        ax_e.plot(t, result.potential_energy / n, ls=":", label=f"potential ({phase})")
        ax_t.plot(t, result.temperature_K, label=phase)
    for ax in (ax_e, ax_t):
        ax.axvline(nvt.time_fs[-1], color="grey", lw=0.8)
        ax.legend(fontsize=8)
    ax_e.set(xlabel="time (fs)", ylabel="energy (eV/atom)", title=f"Cu{n}, 300 K: NVT then NVE")
    ax_t.set(xlabel="time (fs)", ylabel="temperature (K)")
    fig.savefig(args.out / "md_cu.png", dpi=120)
    logging.info("NVT: %s", json.dumps(nvt.summary()))
    logging.info("NVE: %s", json.dumps(nve.summary()))
    logging.info("figure and logs written to %s/", args.out)


if __name__ == "__main__":
    main()
