"""What a training run learns: losses, error metrics, predictions tables and parity plots.

Three tasks share one interface: :meth:`Task.predict` runs the model on a
batch, :meth:`Task.loss` is the differentiable objective, :meth:`Task.errors`
gives summable error totals for epoch metrics (so they reduce across
processes), and :meth:`Task.rows` / :meth:`Task.summary` / :meth:`Task.plot`
turn test-set predictions into a CSV, final metrics and parity plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.units import GPa
from scipy.stats import rankdata
from torch.nn import functional as F

from ..compute import evaluate
from ..graph import MIN_CELL_VOLUME, AtomGraph
from ..nn.base import ALIGNNModel
from .config import TaskConfig

Batch = tuple[AtomGraph, dict[str, torch.Tensor]]
#: eV/Å³ -> GPa
EV_A3_TO_GPA = 1.0 / GPa


def _voigt(stress: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6) in ASE's Voigt order xx yy zz yz xz xy (torch twin of ``full_3x3_to_voigt_6_stress``)."""
    return stress[..., [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


def _pointwise(kind: str, delta: float, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if pred.numel() == 0:
        return pred.sum()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    return F.huber_loss(pred, target, delta=delta)


class Task:
    """Base class; see module docstring."""

    #: every metric :meth:`errors` can report, in a fixed order (processes reduce them in this order)
    metrics: tuple[str, ...] = ()

    def __init__(self, config: TaskConfig):
        self.config = config

    def predict(self, model: ALIGNNModel, graph: AtomGraph, training: bool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, pred: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def errors(self, pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, tuple[float, float]]:
        """``{metric: (sum of absolute errors, count)}`` of one batch, for some of :attr:`metrics`."""
        raise NotImplementedError

    def rows(self, ids: list[str], pred: dict[str, torch.Tensor], batch: Batch) -> list[dict[str, Any]]:
        raise NotImplementedError

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        raise NotImplementedError

    def plot(self, rows: list[dict[str, Any]], folder: Path) -> list[Path]:
        raise NotImplementedError


class RegressionTask(Task):
    """One scalar per structure, in the target's units; MAE, MAD and MAD:MAE on the test set."""

    metrics = ("mae",)

    def predict(self, model: ALIGNNModel, graph: AtomGraph, training: bool) -> dict[str, torch.Tensor]:
        return evaluate(model, graph, forces=False, stress=False, create_graph=training)

    def loss(self, pred: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return _pointwise(self.config.loss, self.config.huber_delta, pred["property"], batch[1]["target"])

    def errors(self, pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, tuple[float, float]]:
        err = (pred["property"] - batch[1]["target"]).abs()
        return {"mae": (float(err.sum()), float(err.numel()))}

    def rows(self, ids: list[str], pred: dict[str, torch.Tensor], batch: Batch) -> list[dict[str, Any]]:
        p, t = pred["property"].tolist(), batch[1]["target"].tolist()
        return [{"id": i, "target": a, "prediction": b} for i, a, b in zip(ids, t, p)]

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        t = np.array([r["target"] for r in rows])
        p = np.array([r["prediction"] for r in rows])
        mae = float(np.abs(p - t).mean())
        mad = float(np.abs(t - t.mean()).mean())
        return {"mae": mae, "mad": mad, "mad_mae": mad / mae if mae > 0 else math.inf, "n": len(rows)}

    def plot(self, rows: list[dict[str, Any]], folder: Path) -> list[Path]:
        t = [r["target"] for r in rows]
        p = [r["prediction"] for r in rows]
        return [_parity(t, p, self.config.target or "target", folder / "parity.png")]


class ClassificationTask(Task):
    """Class log-probabilities per structure; accuracy and ROC AUC on the test set."""

    metrics = ("error_rate",)

    def predict(self, model: ALIGNNModel, graph: AtomGraph, training: bool) -> dict[str, torch.Tensor]:
        return evaluate(model, graph, forces=False, stress=False, create_graph=training)

    def loss(self, pred: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return F.nll_loss(pred["property"], batch[1]["target"])

    def errors(self, pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, tuple[float, float]]:
        wrong = (pred["property"].argmax(dim=1) != batch[1]["target"]).float()
        return {"error_rate": (float(wrong.sum()), float(wrong.numel()))}

    def rows(self, ids: list[str], pred: dict[str, torch.Tensor], batch: Batch) -> list[dict[str, Any]]:
        prob = pred["property"].exp()
        out = []
        for i, t, pr in zip(ids, batch[1]["target"].tolist(), prob.tolist()):
            row = {"id": i, "target": t, "prediction": int(np.argmax(pr))}
            row.update({f"p{k}": v for k, v in enumerate(pr)})
            out.append(row)
        return out

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        t = np.array([r["target"] for r in rows])
        k = self.config.num_classes
        prob = np.array([[r[f"p{c}"] for c in range(k)] for r in rows])
        aucs = [roc_auc(t == c, prob[:, c]) for c in (range(k) if k > 2 else [1])]
        aucs = [a for a in aucs if not math.isnan(a)]
        return {
            "accuracy": float((prob.argmax(1) == t).mean()),
            "roc_auc": float(np.mean(aucs)) if aucs else math.nan,
            "n": len(rows),
        }

    def plot(self, rows: list[dict[str, Any]], folder: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.array([r["target"] for r in rows])
        k = self.config.num_classes
        fig, ax = plt.subplots(figsize=(4.5, 4))
        for c in range(k):
            ax.hist([r[f"p{c}"] for r, tc in zip(rows, t) if tc == c], bins=20, range=(0, 1), alpha=0.5,
                    label=f"true class {c}: p(class {c})")
        ax.set_xlabel("predicted probability of the true class")
        ax.set_ylabel("test structures")
        ax.legend(fontsize=8)
        path = folder / "class_probabilities.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return [path]


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney statistic, ties counted half); NaN with one class only."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _stress_mask(graph: AtomGraph, labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) the structures whose stress counts: labelled, with a 3D cell (a stress label on a structure without
    one is left out: its predicted stress is NaN, see :func:`~alignn_ase.compute.evaluate`)."""
    return labels["has_stress"] & (graph.volume() >= MIN_CELL_VOLUME)


class ForceFieldTask(Task):
    """Energy per atom (eV/atom), forces (eV/Å) and stress (GPa) with a weighted loss.

    Forces and stress come from autograd of the energy, with ``create_graph``
    during training so the loss can be differentiated through them. Stress
    is predicted for the structures with a 3D cell, also in a batch that
    holds molecules; only labelled structures count.
    """

    _metric = {"energy": "energy_mae_eV_per_atom", "forces": "force_mae_eV_per_A", "stress": "stress_mae_GPa"}
    metrics = tuple(_metric.values())

    def predict(self, model: ALIGNNModel, graph: AtomGraph, training: bool) -> dict[str, torch.Tensor]:
        stress = "where_defined" if self.config.stress_weight > 0 else False
        return evaluate(model, graph, forces=True, stress=stress, create_graph=training)

    def _parts(self, pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        graph, lab = batch
        n = graph.n_atoms.to(pred["energy"].dtype)
        parts = {"energy": (pred["energy"] / n, lab["energy"] / n)}
        atom_mask = lab["has_forces"][graph.atom_graph]
        parts["forces"] = (pred["forces"][atom_mask], lab["forces"][atom_mask])
        if "stress" in pred:
            voigt = _voigt(pred["stress"])
            mask = _stress_mask(graph, lab)
            parts["stress"] = (voigt[mask] * EV_A3_TO_GPA, lab["stress"][mask] * EV_A3_TO_GPA)
        return parts

    def loss(self, pred: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        c = self.config
        weights = {"energy": c.energy_weight, "forces": c.force_weight, "stress": c.stress_weight}
        total = pred["energy"].sum() * 0.0
        for name, (p, t) in self._parts(pred, batch).items():
            if weights[name] > 0:
                total = total + weights[name] * _pointwise(c.loss, c.huber_delta, p, t)
        return total

    def errors(self, pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, tuple[float, float]]:
        out = {}
        for name, (p, t) in self._parts(pred, batch).items():
            err = (p.detach() - t).abs()
            out[self._metric[name]] = (float(err.sum()), float(err.numel()))
        return out

    def rows(self, ids: list[str], pred: dict[str, torch.Tensor], batch: Batch) -> list[dict[str, Any]]:
        graph, lab = batch
        n = graph.n_atoms.tolist()
        starts = np.cumsum([0] + n[:-1])
        with_stress = _stress_mask(graph, lab).tolist() if "stress" in pred else [False] * len(ids)
        rows = []
        for b, rid in enumerate(ids):
            sl = slice(int(starts[b]), int(starts[b]) + n[b])
            row: dict[str, Any] = {
                "id": rid,
                "n_atoms": n[b],
                "energy_per_atom": float(lab["energy"][b]) / n[b],
                "energy_per_atom_pred": float(pred["energy"][b]) / n[b],
            }
            if bool(lab["has_forces"][b]):
                row["forces"] = lab["forces"][sl].tolist()
                row["forces_pred"] = pred["forces"][sl].tolist()
            if with_stress[b]:
                row["stress_GPa"] = (lab["stress"][b] * EV_A3_TO_GPA).tolist()
                row["stress_GPa_pred"] = (_voigt(pred["stress"][b]) * EV_A3_TO_GPA).tolist()
            rows.append(row)
        return rows

    @staticmethod
    def _pairs(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
        t = [np.ravel(r[key]) for r in rows if key in r]
        p = [np.ravel(r[key + "_pred"]) for r in rows if key in r]
        return (np.concatenate(t), np.concatenate(p)) if t else (np.zeros(0), np.zeros(0))

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        out: dict[str, float] = {"n": len(rows)}
        for key, name in (
            ("energy_per_atom", "energy_mae_eV_per_atom"),
            ("forces", "force_mae_eV_per_A"),
            ("stress_GPa", "stress_mae_GPa"),
        ):
            t, p = self._pairs(rows, key)
            if len(t):
                out[name] = float(np.abs(p - t).mean())
        return out

    def plot(self, rows: list[dict[str, Any]], folder: Path) -> list[Path]:
        paths = []
        for key, label in (("energy_per_atom", "energy (eV/atom)"), ("forces", "force component (eV/Å)"),
                           ("stress_GPa", "stress component (GPa)")):
            t, p = self._pairs(rows, key)
            if len(t):
                paths.append(_parity(t, p, label, folder / f"parity_{key}.png"))
        return paths


def _parity(target: Any, prediction: Any, label: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, p = np.asarray(target, dtype=float), np.asarray(prediction, dtype=float)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.scatter(t, p, s=6, alpha=0.5)
    ax.set_xlabel(f"reference {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(f"test set: MAE {np.abs(p - t).mean():.4g}, n={len(t)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_task(config: TaskConfig) -> Task:
    return {"regression": RegressionTask, "classification": ClassificationTask, "forcefield": ForceFieldTask}[
        config.kind
    ](config)
