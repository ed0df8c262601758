"""Physics of the smooth potential: gradients, invariances, extensivity, smoothness,
and geometry sensitivity in elemental solids (where upstream's gated mean is blind)."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from scipy.spatial.transform import Rotation

from alignn_ase import ALIGNNCalculator, batch_graphs, build_graph, evaluate, load_model
from alignn_ase.nn.layers import polynomial_envelope
from alignn_ase.training.trainer import _with_added_parts

from .conftest import UPSTREAM
from .helpers import calc64, random_crystal, smooth_model


def energy(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


ANGLE = pytest.mark.parametrize("angle_energy", [False, True])


@ANGLE
@pytest.mark.parametrize("seed", [0, 1])
def test_forces_match_central_differences(seed, angle_energy):
    atoms = random_crystal("Si2O3Na", seed=seed)
    atoms.calc = calc64(smooth_model(angle_energy=angle_energy))
    forces = atoms.get_forces()
    h = 1e-5
    fd = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            fd[i, k] = -(energy(plus, atoms.calc) - energy(minus, atoms.calc)) / (2 * h)
    assert np.abs(forces).max() > 1e-2
    assert np.abs(fd - forces).max() <= 1e-6 * np.abs(forces).max()


@ANGLE
@pytest.mark.parametrize("seed", [0, 3])
def test_stress_matches_finite_strain(seed, angle_energy):
    atoms = random_crystal("MgAl2O4", seed=seed, a=4.2)
    atoms.calc = calc64(smooth_model(angle_energy=angle_energy))
    stress = atoms.get_stress(voigt=False)
    h = 1e-5
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += sign * h / 2
                eps[j, i] += sign * h / 2
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                fd[i, j] += sign * energy(strained, atoms.calc) / (2 * h)
    fd /= atoms.get_volume()
    assert np.abs(stress).max() > 1e-4
    assert np.abs(fd - stress).max() <= 1e-6 * np.abs(stress).max()


def test_zbl_acts_on_short_bonds_only():
    """ZBL is evaluated on every bond but is exactly zero, in value and gradient, at and beyond its cut-off: with
    bonds on both sides of a 2.3 Å cut-off the energy is the sum over the shorter bonds alone, and forces match
    finite differences."""
    from alignn_ase.nn.layers import zbl_pair_energy

    for dtype in (torch.float32, torch.float64):
        # at r = r_cut itself, r / r_cut (a multiplication by the reciprocal) can round to just under 1, where the
        # envelope's gradient is rounding noise (1e-15 eV/Å in float64, 1e-7 in float32); beyond it, exactly zero
        r = torch.tensor([2.3003, 2.31, 3.45, 1e3], dtype=dtype, requires_grad=True)
        z = torch.tensor([14.0, 8.0, 11.0, 92.0], dtype=dtype)
        pair = zbl_pair_energy(z, z.flip(0), r, 2.3)
        (grad,) = torch.autograd.grad(pair.sum(), r)
        assert (pair == 0).all() and (grad == 0).all(), (pair, grad)

    atoms = random_crystal("Si2O3Na", seed=2, a=4.0)
    model = smooth_model(zbl_cutoff=2.3).double()
    graph = build_graph(atoms, model.graph_settings, torch.float64)
    d = graph.bond_vectors().norm(dim=1)
    short = d < 2.3
    assert short.any() and (~short).any()
    z = graph.numbers.double()
    short_bonds = 0.5 * zbl_pair_energy(z[graph.src][short], z[graph.dst][short], d[short], 2.3).sum()
    no_zbl = smooth_model(zbl_cutoff=2.3, use_zbl=False).double()
    e_zbl = evaluate(model, graph, forces=False, stress=False)["energy"]
    e_plain = evaluate(no_zbl, graph, forces=False, stress=False)["energy"]
    assert float(short_bonds) > 1.0
    assert torch.allclose(e_zbl - e_plain, short_bonds, rtol=1e-12, atol=1e-10)

    atoms.calc = calc64(model)
    forces = atoms.get_forces()
    h = 1e-5
    for i, k in [(0, 0), (2, 1), (4, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd = -(energy(plus, atoms.calc) - energy(minus, atoms.calc)) / (2 * h)
        assert abs(fd - forces[i, k]) <= 1e-6 * np.abs(forces).max()


@pytest.mark.parametrize("which", ["smooth", "upstream"])
def test_skipping_zbl_without_short_bonds_changes_no_bit(monkeypatch, which):
    """On the CPU the calculator skips ZBL when no bond is shorter than its cut-off: energies, forces and stress
    equal those of evaluating it on every bond, to the last bit (it is exactly zero there); for our smooth
    model and for an upstream ALIGNN-FF checkpoint (its ZBL cut-off 0.9 Å)."""
    from alignn_ase.nn import layers, smooth, upstream

    atoms = random_crystal("Si2O3Na", seed=2, a=5.0)
    model = smooth_model(zbl_cutoff=1.2) if which == "smooth" else load_model(UPSTREAM / "pure_2_2_64_cgcnn")
    r_cut = model.config.zbl_cutoff
    assert model.config.use_zbl if which == "smooth" else model.use_zbl
    d = build_graph(atoms, model.graph_settings, torch.float64).bond_vectors().norm(dim=1)
    assert not layers.zbl_needed(d, r_cut) and layers.zbl_needed(d, float(d.min()) + 1e-3)
    for dtype in ("float32", "float64"):
        skipped = ALIGNNCalculator(model, dtype=dtype).predict([atoms], progress=False)[0]
        with monkeypatch.context() as m:
            m.setattr(smooth, "zbl_needed", lambda d, r_cut: True)
            m.setattr(upstream, "zbl_needed", lambda d, r_cut: True)
            evaluated = ALIGNNCalculator(model, dtype=dtype).predict([atoms], progress=False)[0]
        for key in set(skipped) | set(evaluated):
            assert np.array_equal(skipped[key], evaluated[key]), (dtype, key)


def test_stress_sign_is_ase_convention():
    """Positive stress = tensile: a crystal squeezed into the ZBL wall pushes outwards (negative stress)."""
    atoms = bulk("Cu", "fcc", a=3.0)
    calc = calc64(smooth_model(zbl_cutoff=2.3))
    atoms.calc = calc
    s = atoms.get_stress()
    v = [_strained(atoms, 1 + sign * 1e-5) for sign in (1, -1)]
    de_dv = (energy(v[0], calc) - energy(v[1], calc)) / (v[0].get_volume() - v[1].get_volume())
    # ASE: stress = (1/V) dE/d(strain); for isotropic strain trace(stress)/3 = dE/dV (eV/Å³).
    assert np.isclose(s[:3].mean(), de_dv, rtol=1e-6)
    assert s[:3].mean() < 0


@ANGLE
def test_invariances(angle_energy):
    atoms = random_crystal("ZnS2O", seed=5)
    calc = calc64(smooth_model(angle_energy=angle_energy))
    atoms.calc = calc
    e0, f0, s0 = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)

    moved = atoms.copy()
    moved.translate([0.37, -1.2, 2.9])
    assert np.isclose(energy(moved, calc), e0, rtol=1e-10)

    wrapped = moved.copy()
    wrapped.wrap()
    assert np.isclose(energy(wrapped, calc), e0, rtol=1e-10)

    rot = Rotation.from_rotvec([0.9, 0.5, 0.3]).as_matrix()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rot.T
    rotated.calc = calc
    assert np.isclose(rotated.get_potential_energy(), e0, rtol=1e-10)
    assert np.allclose(rotated.get_forces(), f0 @ rot.T, atol=1e-10)
    assert np.allclose(rotated.get_stress(voigt=False), rot @ s0 @ rot.T, atol=1e-12)

    perm = np.random.default_rng(0).permutation(len(atoms))
    permuted = atoms[perm]
    permuted.calc = calc
    assert np.isclose(permuted.get_potential_energy(), e0, rtol=1e-10)
    assert np.allclose(permuted.get_forces(), f0[perm], atol=1e-10)


@ANGLE
def test_supercell_extensivity(angle_energy):
    atoms = random_crystal("Si2O3Na", seed=2)
    calc = calc64(smooth_model(angle_energy=angle_energy))
    e1 = energy(atoms, calc)
    big = atoms.repeat((2, 2, 2))
    big.calc = calc
    assert np.isclose(big.get_potential_energy(), 8 * e1, rtol=1e-10)
    assert np.allclose(big.get_stress(), energy_stress(atoms, calc), atol=1e-10)
    assert np.isclose(big.get_potential_energies().sum(), big.get_potential_energy(), rtol=1e-12)


@ANGLE
@pytest.mark.parametrize("skin", [0.0, 1.0])  # the numpy line graph, and the torch one of the skin's bond list
@pytest.mark.parametrize("cell", ["Cu fcc", "Fe bcc", "SiC zincblende"])
def test_extensivity_of_cells_shorter_than_the_three_body_cutoff(cell, skin, angle_energy):
    """Primitive cells whose lattice vectors (2.5-3.1 Å) are shorter than the 3.5 Å three-body cut-off: an atom
    bonds to its own images, and the straight angle along such a bond must be counted as in a supercell."""
    name, structure = cell.split()
    atoms = bulk(name, structure, a={"Cu": 3.6, "Fe": 2.87, "SiC": 4.36}[name])
    atoms.rattle(0.03, seed=1)
    assert atoms.cell.lengths().min() < 3.5
    model = smooth_model(angle_energy=angle_energy, three_body_cutoff=3.5)
    calc = ALIGNNCalculator(model, dtype="float64", device="cpu", skin=skin)
    e1, s1 = energy(atoms, calc), energy_stress(atoms, calc)
    for repeat in ((2, 2, 2), (3, 1, 1)):
        big = atoms.repeat(repeat)
        big.calc = calc
        n = int(np.prod(repeat))
        assert np.isclose(big.get_potential_energy(), n * e1, rtol=1e-10, atol=1e-10), repeat
        assert np.allclose(big.get_stress(), s1, atol=1e-10), repeat


def energy_stress(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_stress()


@ANGLE
def test_energy_is_smooth_across_both_cutoffs(angle_energy):
    """Atom 2 crosses the three-body cutoff of bond 0-2, then the pair cutoff: the energy has
    no jump (the difference quotient across the cutoff is the force) and no kink (the force is
    the same on both sides)."""
    model = smooth_model(angle_energy=angle_energy)
    calc = calc64(model)

    def at(x):
        atoms = Atoms("CNO", positions=[[0, 0, 0], [1.3, 0, 0], [-x, 0, 0]])
        atoms.calc = calc
        return atoms.get_potential_energy(), atoms.get_forces()[2, 0]  # dE/dx, as position = -x

    h = 1e-6
    for r_cut in (model.config.three_body_cutoff, model.config.cutoff):
        (e_in, g_in), (e_out, g_out) = at(r_cut - h), at(r_cut + h)
        quotient = (e_out - e_in) / (2 * h)
        assert abs(quotient - g_in) < 1e-5 and abs(quotient - g_out) < 1e-5, (r_cut, quotient, g_in, g_out)
    (_, g_far) = at(model.config.cutoff + 0.1)
    assert g_far == 0.0


@pytest.mark.parametrize("exponent", [4, 5, 6])
def test_polynomial_envelope_vanishes_smoothly_at_one(exponent):
    """u(0) = 1; u, u' and u'' tend to 0 as x -> 1 from below; exactly 0 (value and gradient) at 1 and beyond."""
    x = torch.tensor([0.0, 0.3, 1 - 1e-6, 1.0, 1.2, 3.0], dtype=torch.float64, requires_grad=True)
    u = polynomial_envelope(x, exponent)
    (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    (d2u,) = torch.autograd.grad(du.sum(), x)
    assert u[0].item() == 1.0 and 0.0 < u[1].item() < 1.0
    assert abs(u[2].item()) < 1e-13 and abs(du[2].item()) < 1e-8 and abs(d2u[2].item()) < 1e-3
    assert (u[3:] == 0).all() and (du[3:] == 0).all() and (d2u[3:] == 0).all()
    # matches the closed form 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) inside
    p, xv = exponent, x[:3].detach()
    closed = 1 - (p + 1) * (p + 2) / 2 * xv**p + p * (p + 2) * xv ** (p + 1) - p * (p + 1) / 2 * xv ** (p + 2)
    assert torch.allclose(u[:3].detach(), closed, rtol=0, atol=1e-12)


def test_upstream_gated_mean_is_blind_but_smooth_model_sees_elemental_geometry():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.05, seed=1)
    smooth = calc64()
    si.calc = smooth
    assert np.abs(si.get_forces()).max() > 1e-2
    e = [energy(_strained(si, s), smooth) / len(si) for s in (0.97, 1.0, 1.03)]
    assert max(e) - min(e) > 1e-3  # eV/atom across +-3 % strain

    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    cu.rattle(0.05, seed=2)
    cu.calc = smooth
    assert np.abs(cu.get_forces()).max() > 1e-2

    # The upstream architecture (gated normalised mean) at random weights: nearly blind.
    upstream = calc64(load_model(UPSTREAM / "pure_2_2_64_cgcnn"))
    si.calc = upstream
    assert np.abs(si.get_forces()).max() < 1e-4


def test_angle_energy_starts_at_zero_and_sees_bond_bending():
    """A fresh explicit three-body term changes no energy (so a fine-tune that switches it on starts from the loaded
    model); with weights, bending at fixed bond lengths changes the energy it adds."""
    short = {"cutoff": 1.2, "three_body_cutoff": 1.2}  # the two O-H bonds are the only ones: H-H is beyond 1.5 Å
    plain = smooth_model(seed=4, **short)
    fresh = _with_added_parts(plain, {"angle_energy": True}, "plain")
    with_term = smooth_model(seed=4, angle_energy=True, **short)

    def bent(angle_deg):  # O in the middle; both O-H bonds 1.0 Å
        t = np.radians(angle_deg)
        return Atoms("HOH", positions=[[1.0, 0, 0], [0, 0, 0], [np.cos(t), np.sin(t), 0]])

    angles = (100, 150)
    base = [energy(bent(t), calc64(plain)) for t in angles]
    assert [energy(bent(t), calc64(fresh)) for t in angles] == pytest.approx(base, abs=1e-12)
    added = [energy(bent(t), calc64(with_term)) - e for t, e in zip(angles, base)]
    assert abs(added[0] - added[1]) > 1e-4  # eV


def test_angle_energy_goes_to_the_atom_both_bonds_share():
    """With a constant output c, the term adds c * sum of w1 w2 over the bond pairs (u->v, v->w) to atom v's site
    energy, w the three-body envelopes of the two bonds."""
    atoms = random_crystal("Si2O3Na", seed=1)
    plain = smooth_model(seed=2)
    with_term = _with_added_parts(plain, {"angle_energy": True}, "plain")
    with torch.no_grad():
        with_term.angle_readout[2].bias.fill_(0.1)  # weight stays zero: g = 0.1 eV for every bond pair

    sites = []
    for model in (plain, with_term):
        atoms.calc = calc64(model)
        sites.append(atoms.get_potential_energies())
    graph = build_graph(atoms, plain.graph_settings, torch.float64)
    d = graph.bond_vectors().norm(dim=1)
    w = polynomial_envelope(d / plain.config.three_body_cutoff, plain.config.envelope_exponent)
    pair = w[graph.triplet_e1] * w[graph.triplet_e2]
    expected = torch.zeros(len(atoms), dtype=torch.float64).index_add_(0, graph.src[graph.triplet_e2], 0.1 * pair)
    assert expected.abs().min() > 1e-3  # every atom is the centre of some bond pair here
    assert np.allclose(sites[1] - sites[0], expected.numpy(), atol=1e-12)


def _strained(atoms, scale):
    out = atoms.copy()
    out.set_cell(atoms.cell * scale, scale_atoms=True)
    return out


def test_batched_graph_matches_single_structures():
    model = smooth_model().double()
    systems = [random_crystal("Si2O3Na", seed=0), bulk("Cu", "fcc", a=3.6), molecule("H2O")]
    systems[2].center(vacuum=4.0)
    graphs = [build_graph(a, model.graph_settings, torch.float64) for a in systems]
    batch = evaluate(model, batch_graphs(graphs), stress=False)
    start = 0
    for g in graphs:
        single = evaluate(model, g, stress=False)
        n = g.num_atoms
        assert torch.allclose(batch["forces"][start : start + n], single["forces"], atol=1e-10)
        start += n
    singles = torch.cat([evaluate(model, g, stress=False)["energy"] for g in graphs])
    assert torch.allclose(batch["energy"], singles, rtol=1e-12)


def test_valid_unusual_inputs():
    calc = calc64()
    lone = Atoms("Fe", positions=[[0, 0, 0]])
    lone.calc = calc
    assert np.isfinite(lone.get_potential_energy())
    assert np.allclose(lone.get_forces(), 0)

    mol = molecule("CH4")  # no cell at all
    mol.calc = calc
    assert np.isfinite(mol.get_potential_energy())
    assert np.abs(mol.get_forces().sum(axis=0)).max() < 1e-10  # no net force on a free molecule

    slab = fcc111("Pt", size=(2, 2, 3), vacuum=6.0)  # pbc (T, T, F)
    slab.calc = calc
    assert np.isfinite(slab.get_stress()).all()
    periodic = slab.copy()
    periodic.pbc = True  # 12 Å of vacuum > cutoff: identical
    assert np.isclose(energy(periodic, calc), slab.get_potential_energy(), rtol=1e-12)
