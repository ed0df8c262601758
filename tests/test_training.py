"""Training loop: tasks learn, files are written, resume and DDP reproduce, readers round-trip, bad input is named."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from alignn_ase import ALIGNNCalculator, load_model
from alignn_ase.errors import ConfigError, DatasetError
from alignn_ase.training import config_from_dict, load_config, read_dataset, train
from alignn_ase.training.trainer import _with_added_parts

from .conftest import UPSTREAM

TINY = {"hidden_features": 16, "embedding_features": 16, "alignn_layers": 1, "gcn_layers": 1}


def emt_frames(n: int = 40, seed: int = 0) -> list:
    """Rattled, strained 4-atom Cu/Al fcc cells labelled by EMT (energy eV, forces eV/Å, stress eV/Å³)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.symbols[rng.random(4) < rng.random()] = "Al"
        a.set_cell(a.cell * (1 + rng.normal(0, 0.02)), scale_atoms=True)
        a.rattle(0.08, seed=seed * 1000 + i)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        a.info["id"] = f"s{i}"
        a.info["epa"] = e / len(a)
        frames.append(a)
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "emt.extxyz"
    write(path, emt_frames())
    return path


def run_config(out: Path, data: Path, kind: str, **over) -> dict:
    cfg = {
        "output_dir": str(out),
        "dtype": "float64",
        "device": "cpu",
        "data": {"path": str(data)},
        "task": {"kind": kind},
        "model": {"params": dict(TINY)},
        "optim": {"epochs": 12, "batch_size": 8, "lr": 3e-3},
    }
    if kind != "forcefield":
        cfg["task"]["target"] = "epa"
        cfg["model"]["architecture"] = "alignn"
    for key, value in over.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def test_regression_learns_and_writes_outputs(tmp_path, dataset):
    result = train(run_config(tmp_path, dataset, "regression"), progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0]
    for name in ("metrics.csv", "metrics.json", "test_metrics.json", "predictions_test.csv", "parity.png", "split.json"):
        assert (tmp_path / name).is_file(), name
    assert set(result.test_metrics) >= {"mae", "mad", "mad_mae"}
    model = load_model(result.best_model)
    assert model.property_name == "epa" and not model.is_potential


def test_classification_learns(tmp_path, dataset):
    frames = emt_frames()
    threshold = float(np.median([a.info["epa"] for a in frames]))
    cfg = run_config(tmp_path, dataset, "classification", task={"threshold": threshold}, optim={"epochs": 15})
    result = train(cfg, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert set(result.test_metrics) >= {"accuracy", "roc_auc"}
    assert (tmp_path / "class_probabilities.png").is_file()


def test_forcefield_reduces_force_error_and_loads_in_calculator(tmp_path, dataset):
    result = train(run_config(tmp_path, dataset, "forcefield"), progress=False)
    fmae = [h["val_force_mae_eV_per_A"] for h in result.history]
    assert min(fmae[-3:]) < 0.7 * fmae[0]
    assert {"energy_mae_eV_per_atom", "force_mae_eV_per_A", "stress_mae_GPa"} <= set(result.test_metrics)
    atoms = emt_frames(1, seed=7)[0]
    atoms.calc = ALIGNNCalculator(model=result.best_model, device="cpu")
    assert np.isfinite(atoms.get_forces()).all()


def test_property_model_attaches_to_calculator_and_finetune_freezes(tmp_path, dataset):
    prop = train(run_config(tmp_path / "p", dataset, "regression", optim={"epochs": 2}), progress=False)
    ff = train(run_config(tmp_path / "f", dataset, "forcefield", optim={"epochs": 1}), progress=False)
    atoms = emt_frames(1, seed=9)[0]
    atoms.calc = ALIGNNCalculator(model=ff.best_model, properties=[prop.best_model], device="cpu")
    value = atoms.calc.get_property("epa", atoms)
    atoms.positions[0] += 0.2
    assert atoms.calc.get_property("epa", atoms) != value

    cfg = run_config(tmp_path / "ft", dataset, "forcefield", optim={"epochs": 2},
                     model={"init_from": str(ff.best_model), "freeze": ["atom_embedding", "alignn_layers"]})
    tuned = load_model(train(cfg, progress=False).best_model)
    before = load_model(ff.best_model)
    old = dict(before.named_parameters())
    changed = {name for name, p in tuned.named_parameters() if not torch.equal(p, old[name])}
    assert not {n for n in changed if n.startswith(("atom_embedding", "alignn_layers"))}
    assert {"readout.0.weight", "edge_embedding.1.layer.0.weight", "gcn_layers.0.src_update.weight"} <= changed

    # batch normalisation (the upstream architecture): a frozen module's running statistics stay frozen too
    cfg = run_config(tmp_path / "ftp", dataset, "regression", optim={"epochs": 2},
                     model={"init_from": str(prop.best_model), "freeze": ["atom_embedding", "gcn_layers"]})
    tuned = load_model(train(cfg, progress=False).best_model)
    old = dict(load_model(prop.best_model).named_buffers())
    changed = {name for name, b in tuned.named_buffers() if b.is_floating_point() and not torch.equal(b, old[name])}
    assert changed and not {n for n in changed if n.startswith(("atom_embedding", "gcn_layers"))}, changed


def _history(out: Path) -> list[dict]:
    path = out / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else []


def test_checkpoint_writes_survive_a_kill_at_any_point(tmp_path):
    """A kill inside a checkpoint write leaves either a stale ``.old`` copy beside the new folder or
    (between the two renames) only the ``.old`` copy and a ``.tmp``; the next write or the final load
    must cope with both."""
    from alignn_ase import save_model
    from alignn_ase.training.trainer import _restore_checkpoint, _save_checkpoint

    from .helpers import smooth_model

    first, second, third = (smooth_model(seed=k) for k in range(3))
    folder = tmp_path / "best_model"
    old, tmp = tmp_path / "best_model.old", tmp_path / "best_model.tmp"

    def weights(path):
        return load_model(path).state_dict()["atom_embedding.layer.0.weight"]

    # killed after the swap, before the old copy was removed
    save_model(first, folder)
    save_model(first, old)
    _save_checkpoint(second, folder, "card")
    assert not old.exists() and not tmp.exists()
    assert torch.equal(weights(folder), second.state_dict()["atom_embedding.layer.0.weight"])

    # killed between the two renames: the previous checkpoint is put back, the partial write dropped
    os.replace(folder, old)
    save_model(third, tmp)
    (tmp / "model.safetensors").write_bytes(b"partial")
    _restore_checkpoint(folder)
    assert not old.exists() and not tmp.exists()
    assert torch.equal(weights(folder), second.state_dict()["atom_embedding.layer.0.weight"])


def test_killed_run_resumes_to_the_same_result(tmp_path, dataset):
    over = {"optim": {"epochs": 8, "ema_decay": 0.8}}
    full = train(run_config(tmp_path / "full", dataset, "forcefield", **over), progress=False)

    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(run_config(tmp_path / "killed", dataset, "forcefield", **over)))
    proc = subprocess.Popen([sys.executable, "-m", "alignn_ase.training", str(cfg_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_history(tmp_path / "killed")) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(_history(tmp_path / "killed"))
    assert 2 <= done < 8, f"the run should have been killed mid-way, it finished {done} epochs"

    resumed = train(str(cfg_path), progress=False)
    assert [h["epoch"] for h in resumed.history] == list(range(1, 9))
    for a, b in zip(full.history, resumed.history):
        for key in ("train_loss", "val_loss", "val_force_mae_eV_per_A"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a["epoch"], key)


def test_a_run_paused_by_its_time_budget_continues_to_the_same_result(tmp_path, dataset, capsys):
    """optim.max_minutes pauses a run after the epoch that leaves no time for another; each rerun of the same
    config (from the command line too) runs at least one epoch, and the last one ends as an uninterrupted run."""
    over = {"optim": {"epochs": 4, "ema_decay": 0.8}}
    full = train(run_config(tmp_path / "full", dataset, "forcefield", **over), progress=False)
    assert not full.paused

    cfg = run_config(tmp_path / "paused", dataset, "forcefield", **over)
    cfg = {**cfg, "optim": {**cfg["optim"], "max_minutes": 1e-6}}
    first = train(cfg, progress=False)
    assert first.paused and [h["epoch"] for h in first.history] == [1]
    assert not (tmp_path / "paused" / "test_metrics.json").exists()
    cfg_path = tmp_path / "paused.json"
    cfg_path.write_text(json.dumps(cfg))
    from alignn_ase.cli import main

    assert main(["train", str(cfg_path)]) == 0
    assert "paused after epoch 2 of 4" in capsys.readouterr().out
    done = train({**cfg, "optim": {**cfg["optim"], "max_minutes": None}}, progress=False)  # no budget: to the end
    assert not done.paused and [h["epoch"] for h in done.history] == [1, 2, 3, 4]
    for a, b in zip(full.history, done.history):
        for key in ("train_loss", "val_loss", "val_force_mae_eV_per_A"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a["epoch"], key)
    assert done.test_metrics == pytest.approx(full.test_metrics, rel=1e-6)
    with pytest.raises(ConfigError, match="optim.max_minutes"):
        config_from_dict({**cfg, "optim": {"max_minutes": 0}})


def test_two_process_ddp_matches_single_process(tmp_path, dataset):
    single = train(run_config(tmp_path / "one", dataset, "forcefield", optim={"epochs": 3, "batch_size": 8}),
                   progress=False)
    cfg_path = tmp_path / "ddp.json"
    cfg_path.write_text(json.dumps(run_config(tmp_path / "two", dataset, "forcefield",
                                              optim={"epochs": 3, "batch_size": 4})))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
         "-m", "alignn_ase.training", str(cfg_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = _history(tmp_path / "two")
    assert len(ddp) == 3
    for a, b in zip(single.history, ddp):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a["epoch"], key)


def test_readers_round_trip(tmp_path):
    frames = emt_frames(3, seed=3)
    # JARVIS JSON
    records = [{"jid": f"JVASP-{i}", "epa": a.info["epa"],
                "atoms": {"lattice_mat": a.cell.tolist(), "coords": a.get_scaled_positions(wrap=False).tolist(),
                          "elements": a.get_chemical_symbols(), "cartesian": False}} for i, a in enumerate(frames)]
    (tmp_path / "d.json").write_text(json.dumps(records))
    got = read_dataset(tmp_path / "d.json", "epa")
    assert [r.id for r in got] == ["JVASP-0", "JVASP-1", "JVASP-2"]
    for r, a in zip(got, frames):
        assert np.allclose(r.atoms.positions, a.positions) and r.labels["epa"] == pytest.approx(a.info["epa"])
    # id_prop.csv folder
    folder = tmp_path / "idprop"
    folder.mkdir()
    lines = []
    for i, a in enumerate(frames):  # upstream's folders name POSCARs by id, with no suffix to tell the format
        name = f"POSCAR-{i}" if i % 2 else f"JVASP-{i}"
        write(folder / name, a, format="vasp")
        lines.append(f"{name},{a.info['epa']}")
    (folder / "id_prop.csv").write_text("\n".join(lines) + "\n")
    got = read_dataset(folder, "formation_energy")
    assert [r.labels["formation_energy"] for r in got] == pytest.approx([a.info["epa"] for a in frames])
    (folder / "id_prop.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")  # Excel's CSV UTF-8
    assert [r.id for r in read_dataset(folder, "formation_energy")] == [r.id for r in got]
    for property_only in (tmp_path / "d.json", folder):  # no force-field labels in these formats
        with pytest.raises(DatasetError, match="a force field trains on energy/forces/stress labels"):
            read_dataset(property_only)
    assert np.allclose(got[1].atoms.positions, frames[1].positions, atol=1e-5)
    # extxyz with a SinglePointCalculator
    write(tmp_path / "d.extxyz", frames)
    got = read_dataset(tmp_path / "d.extxyz")
    for r, a in zip(got, frames):
        assert r.labels["energy"] == pytest.approx(a.get_potential_energy())
        assert np.allclose(r.labels["forces"], a.get_forces()) and np.allclose(r.labels["stress"], a.get_stress())
    # ASE database
    from ase.db import connect

    with connect(tmp_path / "d.db") as db:
        for i, a in enumerate(frames):
            db.write(a, jid=f"m{i}", epa=a.info["epa"])
    got = read_dataset(tmp_path / "d.db")
    assert got[2].labels["energy"] == pytest.approx(frames[2].get_potential_energy())
    assert read_dataset(tmp_path / "d.db", "epa")[0].id == "m0"


def test_bad_records_are_named_or_skipped(tmp_path, caplog):
    frames = emt_frames(3, seed=4)
    records = [{"jid": f"J{i}", "epa": a.info["epa"],
                "atoms": {"lattice_mat": a.cell.tolist(), "coords": a.positions.tolist(),
                          "elements": a.get_chemical_symbols(), "cartesian": True}} for i, a in enumerate(frames)]
    records[1]["epa"] = "na"
    del records[2]["epa"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DatasetError, match="record J1: target 'epa' 'na' is not a number"):
        read_dataset(path, "epa")
    with caplog.at_level("WARNING"):
        kept = read_dataset(path, "epa", skip_invalid=True)
    assert [r.id for r in kept] == ["J0"] and "skipped 2 invalid record(s)" in caplog.text

    folder = tmp_path / "idprop"
    folder.mkdir()
    (folder / "POSCAR-0").write_text("not a structure\n")
    (folder / "id_prop.csv").write_text("POSCAR-0,1.0\n")
    with pytest.raises(DatasetError, match="record POSCAR-0: cannot read structure"):
        read_dataset(folder, "x")

    frames[0].calc = None
    write(tmp_path / "nolabel.extxyz", frames[:1])
    with pytest.raises(DatasetError, match="no energy label"):
        read_dataset(tmp_path / "nolabel.extxyz")


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"optim": {"epoch": 3}}, r"optim: unknown field\(s\) \['epoch'\]"),
        ({"optim": {"lr": "fast"}}, "field 'lr' must be a number"),
        ({"task": {"loss": "mae"}}, "field 'loss' must be one of"),
        ({"data": {"split_ratios": [0.5, 0.5, 0.5]}}, "data.split_ratios"),
        ({"task": {"kind": "regression"}}, "task.target"),
        ({"task": {"kind": "classification", "target": "c", "num_classes": 3},
          "model": {"architecture": "alignn_atomwise"}}, "classifies into two classes only"),
        ({"optim": {"grad_clip": -1.0}}, "optim.grad_clip' must be positive or null"),
        ({"optim": {"patience": 0}}, "optim.patience' must be >= 1"),
        ({"task": {"force_weight": -10.0}}, "task.force_weight' must be a finite number >= 0"),
        ({"task": {"energy_weight": float("nan")}}, "task.energy_weight' must be a finite number >= 0"),
        ({"task": {"force_weight": float("inf")}}, "task.force_weight' must be a finite number >= 0"),
        ({"task": {"huber_delta": 0.0}}, "task.huber_delta' must be a finite positive number"),
        ({"task": {"huber_delta": float("inf")}}, "task.huber_delta' must be a finite positive number"),
        ({"optim": {"weight_decay": float("nan")}}, "optim.weight_decay' must be a finite number >= 0"),
        ({"seed": -1}, "field 'seed' must be >= 0"),
        ({"task": {"target": "energy"}}, "'task.target' and 'task.threshold' belong to regression"),
        ({"model": {"graph": {"cutoff": 3.0}}}, "'model.graph' applies to upstream architectures"),
        ({"data": {"group_key": "parent", "split_counts": [1, 1, 1]}}, "split_counts cannot be met with data.group_key"),
        ({"task": {"energy_weight": 0.0, "force_weight": 0.0, "stress_weight": 0.0}}, "all 0: the loss would be 0"),
        ({"task": {"kind": "classification", "target": "c", "threshold": 0.3, "num_classes": 3},
          "model": {"architecture": "alignn"}}, "task.threshold' makes two classes"),
        # a forgotten kind: classification trained a regression without a word
        ({"task": {"kind": "regression", "target": "c", "threshold": 0.3}, "model": {"architecture": "alignn"}},
         "belong to classification tasks"),
        ({"task": {"kind": "regression", "target": "c", "num_classes": 3}, "model": {"architecture": "alignn"}},
         "belong to classification tasks"),
    ],
)
def test_config_errors_name_the_field(patch, message):
    cfg = {"data": {"path": "x.extxyz"}, "task": {"kind": "forcefield"}}
    for key, value in patch.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=message):
        config_from_dict(cfg)


def test_a_key_given_twice_is_refused(tmp_path):
    """YAML and JSON parsers keep the last of two equal keys; a config that says two things is refused."""
    (tmp_path / "twice.yaml").write_text("data: {path: x.extxyz}\noptim: {lr: 0.05}\noptim: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"key\(s\) \['optim'\] given twice"):
        load_config(tmp_path / "twice.yaml")
    (tmp_path / "twice.json").write_text('{"data": {"path": "x.extxyz", "path": "y.extxyz"}}')
    with pytest.raises(ConfigError, match=r"key\(s\) \['path'\] given twice"):
        load_config(tmp_path / "twice.json")


def test_cli_train_runs_a_yaml_config_and_names_bad_fields(tmp_path, dataset):
    import yaml

    from alignn_ase.cli import main

    cfg = run_config(tmp_path / "run", dataset, "forcefield", optim={"epochs": 1})
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "ok.yaml")]) == 0
    # a learning rate written as people write it (YAML 1.1 would make 1e-3 a string)
    (tmp_path / "lr.yaml").write_text(yaml.safe_dump(cfg).replace("lr: 0.003", "lr: 1e-3"))
    assert load_config(tmp_path / "lr.yaml").optim.lr == 1e-3
    assert (tmp_path / "run" / "best_model" / "model.safetensors").is_file()
    cfg["optim"]["epochz"] = 2
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "alignn_ase.cli", "train", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"alignn-ase: error: {tmp_path / 'bad.yaml'}: optim: unknown field(s) ['epochz']; known fields: "
        "['batch_size', 'ema_decay', 'epochs', 'grad_clip', 'lr', 'max_minutes', 'patience', 'scheduler', 'weight_decay']"
    ]

    # --set overrides entries (paths of another machine, a learning rate) before validation
    moved = tmp_path / "elsewhere"
    assert main(["train", str(tmp_path / "bad.yaml"), "--set", "optim.epochz=null", "--set", f"output_dir={moved}",
                 "--set", "optim.lr=1e-3"]) == 1  # an override cannot delete a key: epochz is still unknown
    del cfg["optim"]["epochz"]
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "ok.yaml"), "--set", f"output_dir={moved}", "--set", "optim.lr=1e-3"]) == 0
    saved = json.loads((moved / "best_model" / "MODEL_CARD.md").read_text().split("Training config:")[1]
                       .split("```json")[1].split("```")[0])
    assert saved["output_dir"] == str(moved) and saved["optim"]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        load_config(tmp_path / "ok.yaml", ["optim.lr"])


def test_every_process_reduces_the_same_metric_list():
    """Distributed evaluation sums one list per process; its length must not depend on the process's share of the
    data (none at all, or no structure with stress), else the collective hangs or mixes metrics."""
    from alignn_ase.training.config import TaskConfig
    from alignn_ase.training.tasks import make_task
    from alignn_ase.training.trainer import _Dist, _run_eval

    from .helpers import smooth_model

    class Recording(_Dist):
        def all_sum(self, values):
            self.lengths = [*getattr(self, "lengths", []), len(values)]
            return values

    for kind, target in (("forcefield", None), ("regression", "x")):
        task = make_task(TaskConfig(kind=kind, target=target))
        d = Recording(world_size=2, rank=1)
        loss, metrics = _run_eval(smooth_model(), task, None, [], torch.device("cpu"), torch.float64, d)
        assert d.lengths == [2 + 2 * len(task.metrics)] and metrics == {} and loss == 0.0
    assert make_task(TaskConfig(kind="forcefield")).metrics == (
        "energy_mae_eV_per_atom", "force_mae_eV_per_A", "stress_mae_GPa")


def test_labels_read_where_ase_puts_them(tmp_path):
    """ASE moves energy/magmom from the comment line to a calculator; a virial (eV) becomes -W/V."""
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    path = tmp_path / "labels.extxyz"
    path.write_text(
        "4\nLattice=\"3.6 0 0 0 3.6 0 0 0 3.6\" Properties=species:S:1:pos:R:3 energy=-1.5 magmom=1.25 "
        "virial=\"4.0 0 0 0 4.0 0 0 0 4.0\" pbc=\"T T T\"\n"
        + "".join(f"Cu {x} {y} {z}\n" for x, y, z in a.positions)
    )
    (prop,) = read_dataset(path, "magmom")
    assert prop.labels == {"magmom": 1.25}
    (ff,) = read_dataset(path)
    np.testing.assert_allclose(ff.labels["stress"], [-4.0 / 3.6**3] * 3 + [0.0] * 3)


@pytest.mark.parametrize("fmt", ["extxyz", "db"])
def test_force_field_energy_label_is_energy_or_free_energy(tmp_path, fmt):
    """data.energy_key picks the energy label (smeared-metal DFT: free_energy is what forces derive from)."""
    frames = emt_frames(2, seed=4)
    for k, atoms in enumerate(frames):
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 - k, free_energy=-1.5 - k, forces=atoms.get_forces())
    path = tmp_path / f"smeared.{fmt}"
    write(path, frames)
    assert [r.labels["energy"] for r in read_dataset(path)] == [-1.0, -2.0]
    assert [r.labels["energy"] for r in read_dataset(path, energy_key="free_energy")] == [-1.5, -2.5]
    with pytest.raises(DatasetError, match="energy_key must be one of"):
        read_dataset(path, energy_key="total_energy")
    frames[1].calc = SinglePointCalculator(frames[1], energy=-2.0, forces=frames[1].get_forces())
    write(tmp_path / f"mixed.{fmt}", frames)
    with pytest.raises(DatasetError, match=f"record {'s1' if fmt == 'extxyz' else 2}: no free_energy label"):
        read_dataset(tmp_path / f"mixed.{fmt}", energy_key="free_energy")


def test_training_reads_the_configured_energy_label(tmp_path):
    frames = emt_frames(8, seed=6)
    for atoms in frames:
        atoms.calc = SinglePointCalculator(atoms, free_energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    write(tmp_path / "free.extxyz", frames)
    cfg = run_config(tmp_path / "run", tmp_path / "free.extxyz", "forcefield", optim={"epochs": 1})
    with pytest.raises(DatasetError, match="no energy label"):
        train(cfg, progress=False)
    cfg["data"]["energy_key"] = "free_energy"
    result = train(cfg, progress=False)
    assert len(result.history) == 1
    from alignn_ase.training import evaluate_dataset

    with pytest.raises(DatasetError, match="no energy label"):
        evaluate_dataset(result.best_model, tmp_path / "free.extxyz", {"kind": "forcefield"}, tmp_path / "test")
    metrics = evaluate_dataset(result.best_model, tmp_path / "free.extxyz", {"kind": "forcefield"}, tmp_path / "test",
                               energy_key="free_energy")
    assert metrics["n"] == 8 and np.isfinite(metrics["energy_mae_eV_per_atom"])
    cfg["data"]["energy_key"] = "total_energy"
    with pytest.raises(ConfigError, match="energy_key"):
        config_from_dict(cfg)


def test_bad_force_field_labels_are_named(tmp_path):
    frames = emt_frames(2, seed=5)
    forces = frames[1].get_forces()
    forces[2, 0] = np.nan
    frames[1].calc = SinglePointCalculator(frames[1], energy=-1.0, forces=forces)
    write(tmp_path / "nan.extxyz", frames)
    with pytest.raises(DatasetError, match=r"record s1: forces hold non-finite values \(atoms \[2\]\)"):
        read_dataset(tmp_path / "nan.extxyz")
    frames[1].calc = SinglePointCalculator(frames[1], energy=-1.0, stress=np.full(6, 2.0))  # 320 GPa: in GPa?
    write(tmp_path / "gpa.extxyz", frames)
    with pytest.warns(UserWarning, match="record s1: a stress component of 2 eV/Å³"):
        read_dataset(tmp_path / "gpa.extxyz")
    frames[1].calc = SinglePointCalculator(frames[1], energy=-1.0, forces=np.full((4, 3), 230.0))  # kcal/mol/Å?
    write(tmp_path / "kcal.extxyz", frames)
    with pytest.warns(UserWarning, match="record s1: a force component of 230 eV/Å"):
        read_dataset(tmp_path / "kcal.extxyz")


def test_a_loss_term_without_labels_is_named(tmp_path):
    frames = emt_frames(8, seed=2)
    for a in frames:  # energies only, as from a file whose forces were saved under another name
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy())
    write(tmp_path / "energies.extxyz", frames)
    cfg = run_config(tmp_path / "run", tmp_path / "energies.extxyz", "forcefield", optim={"epochs": 1})
    with pytest.warns(UserWarning, match=r"task.force_weight is 10.0 but none of the \d+ training structures has a forces"):
        train(cfg, progress=False)
    cfg["task"].update(force_weight=0.0, stress_weight=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train({**cfg, "output_dir": str(tmp_path / "run2")}, progress=False)


def test_data_the_model_cannot_take_is_refused_before_training(tmp_path, dataset):
    frames = emt_frames(12, seed=3)
    frames[5].symbols[0] = "Pu"
    write(tmp_path / "pu.extxyz", frames)
    ff = train(run_config(tmp_path / "ff", dataset, "forcefield", optim={"epochs": 1}), progress=False)
    cfg = run_config(tmp_path / "ft", tmp_path / "pu.extxyz", "forcefield", model={"init_from": str(ff.best_model)})
    with pytest.raises(DatasetError, match="record s5: element.*Pu"):
        train(cfg, progress=False)

    for a, c in zip(frames, [0, 1, 2] * 4):
        a.info["c"] = c
    frames[5].symbols[0] = "Cu"
    write(tmp_path / "c3.extxyz", frames)
    cfg = run_config(tmp_path / "cls", tmp_path / "c3.extxyz", "classification", task={"target": "c"})
    with pytest.raises(DatasetError, match=r"class 2 is outside 0..1 \(task.num_classes = 2\)"):
        train(cfg, progress=False)


def test_device_and_init_from_errors_name_their_field(tmp_path, dataset):
    with pytest.raises(ConfigError, match="field 'device': .*"):
        train(run_config(tmp_path, dataset, "forcefield", device="tpu"), progress=False)
    with pytest.raises(ConfigError, match="field 'model.init_from': unknown model"):
        train(run_config(tmp_path, dataset, "forcefield", model={"init_from": str(tmp_path / "nowhere")}),
              progress=False)


def test_freeze_matches_whole_module_names(tmp_path, dataset):
    """'gcn_layers.1' freezes layer 1, not layers 10 and 11."""
    from alignn_ase.training.trainer import _make_model

    cfg = config_from_dict(run_config(tmp_path, dataset, "forcefield",
                                      model={"params": {**TINY, "gcn_layers": 12}, "freeze": ["gcn_layers.1"]}))
    model = _make_model(cfg, ["Al", "Cu"])
    frozen = {name.split(".")[1] for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"1"}
    # each entry must match something: a typo beside a good entry is not ignored
    cfg = config_from_dict(run_config(tmp_path, dataset, "forcefield",
                                      model={"params": TINY, "freeze": ["gcn_layers.0", "alignn_layer"]}))
    with pytest.raises(ConfigError, match=r"model.freeze entries \['alignn_layer'\] match no module"):
        _make_model(cfg, ["Al", "Cu"])


def test_a_non_finite_validation_loss_stops_training_with_a_clear_error(tmp_path, dataset, monkeypatch):
    from alignn_ase.training import trainer

    monkeypatch.setattr(trainer, "_run_eval", lambda *args: (float("nan"), {}))
    with pytest.raises(FloatingPointError, match="validation loss became non-finite .* after epoch 1"):
        train(run_config(tmp_path, dataset, "forcefield", optim={"epochs": 1}), progress=False)


def test_finetune_can_switch_on_the_angle_energy_and_nothing_else(tmp_path, dataset):
    ff = train(run_config(tmp_path / "ff", dataset, "forcefield", optim={"epochs": 1}), progress=False)
    trunk = ["atom_embedding", "edge_embedding", "angle_embedding", "alignn_layers", "gcn_layers", "readout",
             "reference_energies"]
    grown = train(run_config(tmp_path / "ft", dataset, "forcefield", optim={"epochs": 1},
                             model={"init_from": str(ff.best_model), "params": {**TINY, "angle_energy": True},
                                    "freeze": trunk}),
                  progress=False)
    before, tuned = load_model(ff.best_model), load_model(grown.best_model)
    assert tuned.config.angle_energy and not before.config.angle_energy
    old = dict(before.named_parameters())
    changed = {name for name, p in tuned.named_parameters() if name not in old or not torch.equal(p, old[name])}
    assert changed and all(name.startswith("angle_readout.") for name in changed)  # only the new term trained

    # before training, the grown model gives the loaded model's energies, and keeps its card
    loaded = load_model(ff.best_model, torch.float64)
    added = _with_added_parts(loaded, {"angle_energy": True, "elements": loaded.config.elements[::-1]}, "ff")
    assert added.card == loaded.card is not None
    atoms = emt_frames(1, seed=3)[0]
    energies = []
    for model in (loaded, added):
        atoms.calc = ALIGNNCalculator(model=model, dtype="float64", device="cpu")
        energies.append(atoms.get_potential_energy())
    assert energies[0] == pytest.approx(energies[1], abs=1e-12)

    # a fine-tune keeps the loaded model's hyperparameters, does not switch the term off again, names unknown fields,
    # and adds nothing to upstream's architectures
    for source, params, message in [(ff.best_model, {"hidden_features": 32}, "{'hidden_features': 32} differ"),
                                    (grown.best_model, {"angle_energy": False}, "{'angle_energy': False} differ"),
                                    (ff.best_model, {"angle_enrgy": True}, r"unknown field\(s\) \['angle_enrgy'\]"),
                                    (UPSTREAM / "pure_2_2_64_cgcnn", {"angle_energy": True}, "unknown field")]:
        with pytest.raises(ConfigError, match=message):
            _with_added_parts(load_model(source), params, str(source))
    cfg = run_config(tmp_path / "hf", dataset, "forcefield",
                     model={"init_from": str(ff.best_model), "params": {"hidden_features": 32}})
    with pytest.raises(ConfigError, match="can only switch on"):
        train(cfg, progress=False)


def test_finetuning_into_another_task_kind_is_refused(tmp_path, dataset):
    prop = train(run_config(tmp_path / "p", dataset, "regression", optim={"epochs": 1}), progress=False)
    cfg = run_config(tmp_path / "c", dataset, "classification", task={"threshold": -3.0},
                     model={"init_from": str(prop.best_model)})
    with pytest.raises(ConfigError, match="is a regression model; task.kind is 'classification'"):
        train(cfg, progress=False)


@pytest.mark.parametrize("kind, params, message", [
    ("forcefield", {"gradwise_weight": 0}, "is a property model"),  # atomwise without forces: no force field
    ("regression", {"calculate_gradient": True}, "is a force field"),
])
def test_a_fresh_model_must_fit_the_task_kind(tmp_path, dataset, kind, params, message):
    cfg = run_config(tmp_path, dataset, kind, model={"architecture": "alignn_atomwise", "params": {**TINY, **params}},
                     optim={"epochs": 1})
    with pytest.raises(ConfigError, match=message):
        train(cfg, progress=False)


def test_batch_normalised_models_need_two_structures_per_batch_of_one_atom_cells(tmp_path, dataset):
    single = []
    for i, a0 in enumerate(np.linspace(3.5, 3.8, 12)):
        atoms = bulk("Cu", "fcc", a=a0)  # one atom per cell
        atoms.calc = EMT()
        atoms.info.update(id=f"c{i}", epa=atoms.get_potential_energy())
        single.append(atoms)
    write(tmp_path / "single.extxyz", single)
    with pytest.raises(ConfigError, match="puts a lone 1-atom cell in a batch"):
        train(run_config(tmp_path / "a", tmp_path / "single.extxyz", "regression", optim={"epochs": 1, "batch_size": 1}),
              progress=False)
    # cells of several atoms normalise fine one at a time
    train(run_config(tmp_path / "b", dataset, "regression", optim={"epochs": 1, "batch_size": 1}), progress=False)


def test_resume_continues_the_same_run_only_and_remembers_early_stopping(tmp_path, dataset, caplog):
    # a learning rate too small to move any weight (and LayerNorm, no running statistics): the validation loss
    # never improves after the first epoch, so patience 1 stops the run after the second
    cfg = run_config(tmp_path, dataset, "forcefield", optim={"epochs": 6, "patience": 1, "lr": 1e-300})
    first = train(cfg, progress=False)
    assert len(first.history) == 2
    again = train(cfg, progress=False)  # the same command again: the run is over, nothing trains
    assert again.history == first.history
    longer = run_config(tmp_path, dataset, "forcefield", optim={"epochs": 9, "patience": 1, "lr": 1e-300})
    with pytest.raises(ConfigError, match=r"another config \(optim.epochs: 6 -> 9\)"):
        train(longer, progress=False)


def test_split_problems_are_logged_and_a_lone_last_structure_joins_a_batch(tmp_path, dataset, caplog):
    from alignn_ase.training.graphs import epoch_batches

    assert [len(b) for b in epoch_batches(9, 2, 0, 0, True)] == [2, 2, 2, 3]
    assert sorted(i for b in epoch_batches(9, 2, 0, 0, True) for i in b) == list(range(9))
    # two processes: the last global batch (one structure) joins the first, 5 structures cut 3 + 2
    assert [[len(b) for b in epoch_batches(5, 2, 0, 0, True, world_size=2, rank=r)] for r in (0, 1)] == [[3], [2]]
    cfg = run_config(tmp_path, dataset, "regression", optim={"epochs": 1})
    cfg["data"]["split_counts"] = [38, 0, 2]
    with caplog.at_level("WARNING"):
        train(cfg, progress=False)
    assert "no validation structures" in caplog.text


def test_stress_is_trained_in_a_batch_that_also_holds_a_molecule():
    """A crystal's stress label counts in the loss even when its batch holds a structure without a cell."""
    from ase import Atoms

    from alignn_ase import build_graph
    from alignn_ase.training.config import TaskConfig
    from alignn_ase.training.data import Record
    from alignn_ase.training.graphs import collate, label_tensors
    from alignn_ase.training.tasks import make_task

    from .helpers import smooth_model

    model = smooth_model().double()
    task = make_task(TaskConfig(kind="forcefield", stress_weight=1.0))
    crystal = emt_frames(1)[0]
    cluster = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.1, 0.1]])
    cluster.calc = EMT()
    labels = {"energy": cluster.get_potential_energy(), "forces": cluster.get_forces()}
    records = [
        Record("crystal", crystal, {"energy": crystal.get_potential_energy(), "forces": crystal.get_forces(),
                                    "stress": crystal.get_stress()}),
        Record("cluster", cluster, labels),
        # a stress label on a structure without a cell (as a reader may keep it): not a stress that can count
        Record("labelled cluster", cluster.copy(), {**labels, "stress": np.zeros(6)}),
    ]
    samples = [(build_graph(r.atoms, model.graph_settings), label_tensors(r, "forcefield", None, None)) for r in records]
    batch = collate(samples)
    pred = task.predict(model, batch[0], training=True)
    parts = task._parts(pred, batch)
    assert set(parts) == {"energy", "forces", "stress"} and parts["stress"][0].shape == (1, 6)
    alone = task.predict(model, samples[0][0], training=False)["stress"]
    torch.testing.assert_close(pred["stress"][0].detach(), alone[0], rtol=1e-10, atol=1e-12)
    assert torch.isnan(pred["stress"][1:]).all()  # no stress for the clusters...
    loss = task.loss(pred, batch)
    (grad,) = torch.autograd.grad(loss, [next(model.parameters())])
    assert torch.isfinite(loss) and torch.isfinite(grad).all()  # ...and no NaN in the loss or its gradient


@pytest.mark.parametrize(
    "model, message",
    [
        ({"architecture": "alignn_ase_smooth", "params": {"hiden_features": 16}}, r"unknown field\(s\) \['hiden_features'\]"),
        ({"architecture": "alignn_atomwise", "params": {"alignn_layer": 1}}, r"unknown field\(s\) \['alignn_layer'\]"),
        ({"architecture": "alignn_atomwise", "graph": {"neighbor_strategy": "k-nearest", "cutof": 5.0}},
         r"model.graph: unknown field\(s\) \['cutof'\]"),
        ({"architecture": "alignn_atomwise", "graph": {"neighbor_strategy": "k-nearest", "cutoff": 5.0,
                                                       "max_neighbors": 12, "three_body_cutoff": 3.0}},
         "pure_torch neighbor_strategy only"),
    ],
)
def test_model_config_typos_are_refused_before_training(model, message):
    from alignn_ase.training.trainer import _make_model

    cfg = config_from_dict({"data": {"path": "x.extxyz"}, "task": {"kind": "forcefield"}, "model": model})
    with pytest.raises(ConfigError, match=message):
        _make_model(cfg, ["Cu", "Al"])


@pytest.mark.parametrize("architecture, width", [("alignn_atomwise", 1), ("alignn_atomwise_pure", 1), ("alignn", 92)])
def test_upstream_architectures_build_with_their_default_atom_features(architecture, width):
    from alignn_ase.training.trainer import _make_model

    task = {"kind": "regression", "target": "epa"} if architecture == "alignn" else {"kind": "forcefield"}
    cfg = config_from_dict({"data": {"path": "x.extxyz"}, "task": task,
                            "model": {"architecture": architecture, "params": dict(TINY)}})
    model = _make_model(cfg, ["Cu", "Al"])
    assert model.atom_inputs(torch.tensor([29])).shape == (1, width)


def test_split_file_ids_are_checked(tmp_path):
    from alignn_ase.training.splits import load_split

    path = tmp_path / "split.json"
    for split, message in (
        ({"train": ["a", "a", "b"]}, "train lists id 'a' more than once"),
        ({"train": ["a"], "test": ["a"]}, "more than one part"),
        ({"train": ["z"]}, "not in the dataset"),
    ):
        path.write_text(json.dumps(split))
        with pytest.raises(DatasetError, match=message):
            load_split(path, ["a", "b", "c"])
    path.write_text(json.dumps({"train": [], "val": ["a"], "test": ["b"]}))
    with pytest.raises(ConfigError, match="lists no training records"):
        load_split(path, ["a", "b", "c"])


def test_graph_cache_is_keyed_by_the_minimum_distance(tmp_path):
    """A graph cached under a looser overlap check is not reused by a model with a stricter one."""
    from ase import Atoms

    from alignn_ase.graph import GraphSettings
    from alignn_ase.training.data import Record
    from alignn_ase.training.graphs import GraphDataset

    close = Atoms("Cu2", positions=[[0, 0, 0], [0.2, 0, 0]], cell=[6, 6, 6], pbc=True)
    records = [Record("close", close, {"energy": 0.0})]
    settings = GraphSettings("radius", 5.0)
    GraphDataset(records, settings, tmp_path, "forcefield", min_distance=0.0, progress=False)
    with pytest.raises(DatasetError, match="0.2000 Å apart"):
        GraphDataset(records, settings, tmp_path, "forcefield", min_distance=0.3, progress=False)


def test_split_by_group_keeps_each_group_in_one_part(tmp_path):
    """data.group_key: frames of one parent (or trajectory) never sit on both sides of a split."""
    from alignn_ase.training.splits import make_split
    from alignn_ase.training.trainer import _groups

    frames = emt_frames(40)
    for i, a in enumerate(frames):
        a.info["parent"] = f"p{i // 4}"  # ten parents of four frames
    path = tmp_path / "grouped.extxyz"
    write(path, frames)
    records = read_dataset(path, None)
    groups = _groups(records, "parent")
    split = make_split([r.id for r in records], seed=3, ratios=[0.8, 0.1, 0.1], groups=groups)
    part_of = {i: part for part, members in split.items() for i in members}
    assert sorted(part_of) == sorted(r.id for r in records)
    for g in set(groups):
        assert len({part_of[r.id] for r, h in zip(records, groups) if h == g}) == 1
    assert {len(split["val"]), len(split["test"])} == {4}  # one whole parent each
    with pytest.raises(DatasetError, match="has no info\\['trajectory'\\]"):
        _groups(records, "trajectory")


def test_ase_database_key_value_pairs_can_group_a_split(tmp_path):
    from ase.db import connect

    from alignn_ase.training.trainer import _groups

    with connect(tmp_path / "frames.db") as db:
        for i, a in enumerate(emt_frames(8)):
            db.write(a, parent=f"p{i // 4}")
    assert _groups(read_dataset(tmp_path / "frames.db", None), "parent") == ["p0"] * 4 + ["p1"] * 4


def test_a_run_made_before_a_config_entry_existed_still_resumes():
    """A run's saved config lacks entries added since; they had their default values then."""
    from alignn_ase.training.trainer import _check_same_run, _run_identity

    cfg = config_from_dict({"data": {"path": "x.extxyz"}, "task": {"kind": "forcefield"}})
    saved = _run_identity(cfg)
    del saved["data.group_key"]  # as written before group_key existed
    _check_same_run(cfg, saved, Path("run"))
    changed = config_from_dict({"data": {"path": "x.extxyz", "group_key": "parent"}, "task": {"kind": "forcefield"}})
    with pytest.raises(ConfigError, match="data.group_key: - -> \"parent\""):
        _check_same_run(changed, saved, Path("run"))


def test_evaluate_dataset_leaves_the_callers_model_alone(tmp_path, dataset):
    from alignn_ase.training import evaluate_dataset

    from .helpers import smooth_model

    model = smooth_model(elements=["Cu", "Al"])
    metrics = evaluate_dataset(model, dataset, {"kind": "forcefield"}, tmp_path, dtype="float64")
    assert np.isfinite(metrics["energy_mae_eV_per_atom"]) and (tmp_path / "predictions_test.csv").is_file()
    assert model.float_dtype == torch.float32  # evaluated in float64 on a copy
    # a file whose name does not tell its format is read as a training config's data.format would read it
    shutil.copy(dataset, tmp_path / "heldout")
    with pytest.raises(DatasetError, match="format= of evaluate_dataset"):
        evaluate_dataset(model, tmp_path / "heldout", {"kind": "forcefield"}, tmp_path / "b")
    again = evaluate_dataset(model, tmp_path / "heldout", {"kind": "forcefield"}, tmp_path / "b", format="extxyz")
    assert again["energy_mae_eV_per_atom"] == pytest.approx(metrics["energy_mae_eV_per_atom"], rel=1e-5)


def test_a_fresh_force_field_starts_at_the_datas_energy_scale(tmp_path, dataset):
    """The reference energies are fitted to composition less the random readout's own mean site energy: a fresh
    model's energies are as close to the labels as the composition fit alone (the readout's offset, up to ~1 eV/atom
    at width 16, used to be added on top)."""
    from alignn_ase.compute import evaluate
    from alignn_ase.training.graphs import GraphDataset, collate
    from alignn_ase.training.trainer import _init_output, _make_model

    cfg = config_from_dict(run_config(tmp_path, dataset, "forcefield", model={"params": {**TINY, "hidden_features": 16}}))
    records = read_dataset(dataset)
    for seed in range(3):
        torch.manual_seed(seed)
        model = _make_model(cfg, ["Al", "Cu"]).double()
        data = GraphDataset(records, model.graph_settings, tmp_path / "graphs", "forcefield", progress=False)
        _init_output(model, data, "forcefield")
        graph, labels = collate([data[i] for i in range(len(data))])
        n = graph.n_atoms.double()
        counts = np.array([[np.count_nonzero(r.atoms.numbers == z) for z in (13, 29)] for r in records], dtype=float)
        energy = labels["energy"].numpy()
        fit = counts @ np.linalg.lstsq(counts, energy, rcond=None)[0]
        composition_mae = np.mean(np.abs(fit - energy) / n.numpy())
        with torch.no_grad():
            model_mae = float(((evaluate(model, graph, forces=False, stress=False)["energy"] - labels["energy"]) / n)
                              .abs().mean())
        assert model_mae < 1.5 * composition_mae + 0.02, (seed, model_mae, composition_mae)


@pytest.mark.parametrize("architecture", ["alignn_ase_smooth", "alignn"])
@pytest.mark.parametrize("params, match", [({"hidden_features": 0}, r"hidden_features = 0 \(needs >= 1\)"),
                                           ({"gcn_layers": -1}, r"gcn_layers = -1 \(needs >= 0\)"),
                                           ({"alignn_layers": -3}, r"alignn_layers = -3 \(needs >= 0\)")])
def test_model_sizes_that_build_no_model_are_named(tmp_path, dataset, architecture, params, match):
    """A zero width crashed deep in torch after the graphs were built; negative layer counts were accepted."""
    kind = "forcefield" if architecture == "alignn_ase_smooth" else "regression"
    cfg = run_config(tmp_path, dataset, kind, model={"architecture": architecture, "params": {**TINY, **params}})
    with pytest.raises(ConfigError, match=match):
        train(cfg, progress=False)


def test_metrics_files_are_strict_json():
    """A metric with nothing to measure (the ROC AUC of a one-class test set is NaN) is written as null: a bare
    NaN is not JSON, and jq or JavaScript refuse the whole file."""
    from alignn_ase.training.trainer import _json

    def refuse(constant):
        raise ValueError(constant)

    text = _json({"roc_auc": float("nan"), "history": [{"val_loss": float("inf"), "lr": 1e-3}], "n": 3})
    assert json.loads(text, parse_constant=refuse) == {"roc_auc": None, "history": [{"val_loss": None, "lr": 1e-3}],
                                                       "n": 3}


def test_starting_over_removes_the_previous_runs_outputs(tmp_path, dataset, caplog):
    """A run that starts over in a folder (resume: false) used to leave the earlier run's test metrics, predictions
    and parity plot beside its own, which passed for its results when it had no test set."""
    cfg = run_config(tmp_path, dataset, "regression", optim={"epochs": 2})
    train(cfg, progress=False)
    assert (tmp_path / "test_metrics.json").is_file() and (tmp_path / "parity.png").is_file()
    again = train({**cfg, "resume": False, "data": {**cfg["data"], "split_ratios": [0.9, 0.1, 0.0]}}, progress=False)
    assert again.test_metrics == {} and "removing the previous run's" in caplog.text
    for name in ("test_metrics.json", "predictions_test.csv", "parity.png"):
        assert not (tmp_path / name).exists(), name
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 2 and (tmp_path / "best_model").is_dir()
    # only the run's own files go: not the user's that share a prefix; and a fine-tune of the earlier run's best
    # model, started over in the same folder, loads it before its folder is cleared
    for keep in ("best_model_keep", "metrics.csv.bak", "parity_from_paper.png"):
        (tmp_path / keep).mkdir() if keep == "best_model_keep" else (tmp_path / keep).write_text("mine")
    tuned = train({**cfg, "resume": False, "model": {**cfg["model"], "init_from": str(tmp_path / "best_model")}},
                  progress=False)
    assert (tuned.best_model / "model.safetensors").is_file()
    assert all((tmp_path / keep).exists() for keep in ("best_model_keep", "metrics.csv.bak", "parity_from_paper.png"))


def test_resuming_names_records_added_since_the_run_started(tmp_path):
    data = tmp_path / "d.extxyz"
    write(data, emt_frames(12, seed=4))
    cfg = run_config(tmp_path / "run", data, "regression", optim={"epochs": 1})
    train(cfg, progress=False)
    write(data, emt_frames(17, seed=4))  # the same twelve (ids s0..s11) and five new ones
    with pytest.warns(UserWarning, match=r"5 of the 17 records are in none of the resumed run's splits"):
        train(cfg, progress=False)


def test_a_partial_model_graph_takes_upstreams_defaults_for_the_rest():
    """model.graph with only a cut-off used to fail on the missing neighbor_strategy."""
    from alignn_ase.training.trainer import _make_model

    cfg = config_from_dict({"data": {"path": "x.extxyz"}, "task": {"kind": "regression", "target": "epa"},
                            "model": {"architecture": "alignn", "params": dict(TINY), "graph": {"cutoff": 4.0}}})
    s = _make_model(cfg, ["Cu", "Al"]).graph_settings
    assert (s.strategy, s.cutoff, s.max_neighbors) == ("k-nearest", 4.0, 12)


def test_the_fine_tuning_example_config_runs(tmp_path):
    """examples/finetune_default.yaml, as its header says to run it, on a few EMT-labelled Cu cells (one epoch)."""
    frames = []
    for i in range(10):
        a = bulk("Cu", "fcc", a=3.6 + 0.02 * (i % 3), cubic=True)
        a.rattle(0.05, seed=i)
        a.calc = EMT()
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
        frames.append(a)
    write(tmp_path / "my_dft.extxyz", frames)
    example = Path(__file__).resolve().parents[1] / "examples" / "finetune_default.yaml"
    cfg = load_config(example, [f"data.path={tmp_path / 'my_dft.extxyz'}", f"output_dir={tmp_path / 'run'}",
                                "optim.epochs=1"])
    result = train(cfg, progress=False)
    assert result.test_metrics["n"] == 1 and np.isfinite(result.test_metrics["force_mae_eV_per_A"])
    tuned = load_model(result.best_model)
    assert set(tuned.state_dict()) == set(load_model("default").state_dict())
