"""Inference-time tables of a model's input embeddings.

An ALIGNN model embeds each bond by a function of one number (its length, or
an envelope value), each angle by a function of its cosine, and each atom by
a function of its element: MLPs on a Gaussian basis, the same for every call.
A calculator evaluating float32 weights replaces them by tables built once
from the exact MLPs in float64:

- atoms: the embedding of every element, looked up (exact);
- bonds and angles: a cubic Hermite interpolant of the embedding and its
  derivative on a grid of spacing ``SPACING_PER_WIDTH`` times the Gaussians'
  width, refined until its error (probed inside up to ``PROBED_INTERVALS``
  intervals when the table is built) is below ``MAX_RELATIVE_ERROR``, so
  that energies, forces and stress agree with the MLPs to float32 rounding
  (``tests/test_speed_features.py``).

The tables sit in :class:`EmbeddingTables`, non-persistent buffers: a model's
``state_dict`` (and so :func:`~alignn_ase.io.save_model`) is the same with or
without them, and training never sees them.
"""

from __future__ import annotations

import copy
import logging
import math

import torch
from torch import nn

log = logging.getLogger(__name__)

#: the first grid spacing over the width 1/sqrt(gamma) of the Gaussian basis
SPACING_PER_WIDTH = 0.01
#: a table is kept when its interpolant's largest errors, in value and in slope, over the largest magnitude of
#: each, are below this (float32's rounding is 6e-8)
MAX_RELATIVE_ERROR = 1e-6
#: the finite-difference step of the slopes over the grid spacing
FD_STEP = 1e-3
#: intervals probed for the error (spread over the range)
PROBED_INTERVALS = 1024
#: larger tables are not built (the MLP is kept)
MAX_TABLE_BYTES = 64 * 2**20
#: beyond the last Gaussian centre, a Gaussian basis is below exp(-TAIL) everywhere: the embedding is flat there
TAIL = 69.0


class HermiteTable(nn.Module):
    """Cubic Hermite interpolant of a vector function f: [lo, hi] -> R^F, clamped outside [lo, hi].

    ``coefficients`` (n, 4F) holds, per interval of width h, the polynomial
    ``a + t (b + t (c + t d))`` in ``t = (x - x_k) / h``, matching f and h f' at both ends.
    """

    def __init__(self, coefficients: torch.Tensor, lo: float, hi: float):
        super().__init__()
        self.register_buffer("coefficients", coefficients, persistent=False)
        self.lo, self.hi = float(lo), float(hi)
        self.intervals = coefficients.shape[0]
        self.inv_spacing = self.intervals / (self.hi - self.lo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x.clamp(self.lo, self.hi) - self.lo) * self.inv_spacing
        k = u.detach().floor().clamp_(0, self.intervals - 1)
        t = (u - k).unsqueeze(1)
        a, b, c, d = self.coefficients.index_select(0, k.long()).chunk(4, dim=1)
        return a + t * (b + t * (c + t * d))


def hermite_table(
    function: nn.Module, lo: float, hi: float, spacing: float, dtype: torch.dtype
) -> HermiteTable | None:
    """Tabulate ``function`` (a module mapping (n,) to (n, F)) on [lo, hi]: knots ``spacing`` apart, halved
    until the interpolant's errors are below :data:`MAX_RELATIVE_ERROR`; None (the function is kept) if the
    table would first outgrow :data:`MAX_TABLE_BYTES`."""
    exact = copy.deepcopy(function).to(device="cpu", dtype=torch.float64)
    with torch.no_grad():
        features = exact(torch.zeros(1, dtype=torch.float64)).shape[1]
    n = max(1, math.ceil((hi - lo) / spacing))
    while n * 4 * features * torch.finfo(dtype).bits // 8 <= MAX_TABLE_BYTES:
        coefficients, errors = _fit(exact, lo, hi, n)
        log.debug("embedding table: %d intervals, relative errors %.1e (value), %.1e (slope)", n, *errors)
        if max(errors) <= MAX_RELATIVE_ERROR:
            return HermiteTable(coefficients.to(dtype), lo, hi)
        n *= 2
    log.info("an embedding table accurate to %.0e would exceed %d MiB; the MLP is kept", MAX_RELATIVE_ERROR,
             MAX_TABLE_BYTES // 2**20)
    return None


def _fit(exact: nn.Module, lo: float, hi: float, n: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """Hermite coefficients of ``exact`` on n intervals, and the largest errors of the interpolant's value and
    slope relative to the largest magnitude of each."""
    x = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
    h = (hi - lo) / n
    y, dy = _value_and_slope(exact, x, FD_STEP * h)
    s = dy * h
    y0, y1, s0, s1 = y[:-1], y[1:], s[:-1], s[1:]
    coefficients = torch.cat([y0, s0, 3 * (y1 - y0) - 2 * s0 - s1, 2 * (y0 - y1) + s0 + s1], dim=1)
    # probed where a cubic Hermite interpolant's error peaks (its value at mid-interval, its slope at
    # t = 1/2 -+ 1/sqrt(12)), in up to PROBED_INTERVALS intervals spread over the range
    k = torch.linspace(0, n - 1, min(n, PROBED_INTERVALS)).round().long()
    t = torch.tensor([0.2113, 0.5, 0.7887], dtype=torch.float64)
    y_exact, dy_exact = _value_and_slope(exact, (x[k, None] + h * t).reshape(-1), FD_STEP * h)
    a, b, c, d = coefficients[k].repeat_interleave(len(t), dim=0).chunk(4, dim=1)
    t = t.repeat(len(k))[:, None]
    y_table, dy_table = a + t * (b + t * (c + t * d)), (b + t * (2 * c + 3 * t * d)) / h
    errors = (
        float((y_table - y_exact).abs().max() / y_exact.abs().max().clamp_min(1e-30)),
        float((dy_table - dy_exact).abs().max() / dy_exact.abs().max().clamp_min(1e-30)),
    )
    return coefficients, errors


def _value_and_slope(function: nn.Module, x: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``function(x)`` and its derivative with respect to x, row by row: the five-point central difference with
    ``step`` (error ~ step^4 f^(5) / 30, plus rounding ~ 1e-16 |f| / step). Not forward-mode AD, whose
    decompositions of the basis's operators would import torch._dynamo (seconds) on first use."""
    with torch.no_grad():
        y = function(x)
        near = function(x + step) - function(x - step)
        far = function(x + 2 * step) - function(x - 2 * step)
    return y, (8 * near - far) / (12 * step)


class EmbeddingTables(nn.Module):
    """A model's atom, bond and angle embeddings as tables (see the module's docstring); a bond or angle
    table is None where the MLP is kept."""

    def __init__(self, atoms: torch.Tensor, bonds: HermiteTable | None, angles: HermiteTable | None):
        super().__init__()
        self.register_buffer("atoms", atoms, persistent=False)
        self.bonds = bonds
        self.angles = angles


def _gaussian_table(embedding: nn.Sequential, lo: float, hi: float, dtype: torch.dtype) -> HermiteTable | None:
    """Table of ``embedding`` = Sequential(RBFExpansion, MLP...) on [lo, hi], its spacing set by the basis width."""
    return hermite_table(embedding, lo, hi, SPACING_PER_WIDTH / math.sqrt(embedding[0].gamma), dtype)


def embedding_tables(
    atom_embedding: nn.Module, atom_inputs: torch.Tensor, edge_embedding: nn.Sequential, angle_embedding: nn.Sequential
) -> EmbeddingTables:
    """Tables of a model's three embeddings, in the dtype and on the device of ``atom_inputs`` (every element's
    input features).

    Bond inputs (lengths in Å, or envelope values) are >= 0; beyond the last Gaussian centre plus
    sqrt(TAIL / gamma) the bond embedding is flat, so the table ends there and clamps. Angle inputs are
    cosines, in [-1, 1].
    """
    dtype = atom_inputs.dtype
    with torch.no_grad():
        atoms = atom_embedding(atom_inputs)
    rbf = edge_embedding[0]
    bond_end = float(rbf.centers[-1]) + math.sqrt(TAIL / rbf.gamma)
    bonds = _gaussian_table(edge_embedding, 0.0, bond_end, dtype)
    angles = _gaussian_table(angle_embedding, -1.0, 1.0, dtype)
    return EmbeddingTables(atoms, bonds, angles).to(atom_inputs.device)
