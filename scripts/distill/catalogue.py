"""The parent structures of the distillation set, as JSON-serialisable specs.

A spec is a dict with ``id`` (unique, stable), ``group`` (elemental, binary,
ternary, pyxtal, surface, vacancy, molecule), ``prototype`` and ``species``; the
builders in :mod:`builders` turn a spec into an :class:`ase.Atoms`. :func:`plan`
returns the full list in a seeded shuffled order (so any prefix of chunks mixes
all groups) with a held-out flag per parent, stratified by group.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

# --- elemental solids: element -> plausible structures --------------------------------
_FCC = "Al Cu Ag Au Ni Pd Pt Pb Ca Sr Rh Ir".split()
_BCC = "Li Na K Rb Cs Ba V Cr Fe Nb Mo Ta W".split()
_HCP = "Be Mg Sc Ti Co Zn Y Zr Ru Cd Hf Re Os".split()
ELEMENTAL: dict[str, tuple[str, ...]] = {
    **{el: ("fcc", "hcp", "bcc") for el in _FCC},
    **{el: ("bcc", "fcc", "hcp") for el in _BCC},
    **{el: ("hcp", "fcc", "bcc") for el in _HCP},
    "C": ("diamond", "sc"),
    **{el: ("diamond", "sc", "bcc", "fcc") for el in ("Si", "Ge", "Sn")},
    **{el: ("sc", "bcc") for el in ("P", "As", "Sb", "Bi", "Se", "Te")},
    **{el: ("fcc", "bcc", "hcp") for el in ("Ga", "In", "Tl")},
    "Mn": ("bcc", "fcc"),
}

# --- binary and ternary prototypes: prototype -> formulas (species in site order) -----
BINARY: dict[str, tuple[tuple[str, ...], ...]] = {
    "rocksalt": tuple(
        tuple(p.split("-"))
        for p in (
            "Li-F Li-Cl Li-H Na-H Na-F Na-Cl Na-Br K-F K-Cl K-Br K-I Rb-Cl Cs-F Ag-Cl Mg-O Ca-O Sr-O Ba-O "
            "Mg-S Ca-S Ba-S Pb-S Pb-Te Sn-Te Ti-C Ti-N Zr-C Zr-N Hf-C V-N Nb-C Ta-C Sc-N Ni-O Mn-O Co-O "
            "Fe-O Cr-N La-N"
        ).split()
    ),
    "cesiumchloride": tuple(
        tuple(p.split("-"))
        for p in "Cs-Cl Cs-Br Cs-I Tl-Cl Ni-Al Cu-Zn Fe-Al Co-Al Ag-Mg Cu-Pd Ti-Ni Au-Cd Sc-Cu Ru-Al".split()
    ),
    "zincblende": tuple(
        tuple(p.split("-"))
        for p in (
            "Ga-As Ga-P Ga-Sb In-P In-As In-Sb Al-P Al-As Al-Sb Zn-S Zn-Se Zn-Te Cd-Te Cd-Se Cu-Cl Cu-Br "
            "B-N B-P Si-C"
        ).split()
    ),
    "wurtzite": tuple(tuple(p.split("-")) for p in "Zn-O Ga-N Al-N In-N Cd-S Be-O Zn-S Si-C".split()),
    # fluorite: cation at 4a, anion at 8c; antifluorite written with the anion first
    "fluorite": tuple(
        tuple(p.split("-"))
        for p in "Ca-F Sr-F Ba-F Cd-F Pb-F Zr-O Hf-O Ce-O O-Li O-Na O-K S-Li Si-Mg".split()
    ),
    "rutile": tuple(
        tuple(p.split("-"))
        for p in "Ti-O Sn-O Ge-O Mn-O V-O Ru-O Cr-O Ir-O Pb-O Mg-F Zn-F Ni-F Fe-F Mg-H".split()
    ),
    # L1_2 A3B: A on face centres, B on corners
    "L12": tuple(tuple(p.split("-")) for p in "Cu-Au Ni-Al Ni-Fe Pt-Ti Al-Sc Pd-Fe Pt-Al Ir-Nb".split()),
    "corundum": tuple(tuple(p.split("-")) for p in "Al-O Cr-O Fe-O V-O Ti-O Ga-O".split()),
}
TERNARY: dict[str, tuple[tuple[str, ...], ...]] = {
    # ABX3, A on the cube corner, B in the centre
    "perovskite": tuple(
        tuple(p.split("-"))
        for p in (
            "Sr-Ti-O Ba-Ti-O Ca-Ti-O Pb-Ti-O K-Nb-O Na-Nb-O K-Ta-O La-Al-O Sr-Zr-O Ba-Zr-O La-Mn-O La-Fe-O "
            "Sr-Ru-O Ba-Sn-O K-Mg-F Cs-Pb-Br Cs-Pb-I Cs-Sn-I"
        ).split()
    ),
    # AB2O4 normal spinel
    "spinel": tuple(
        tuple(p.split("-")) for p in "Mg-Al-O Zn-Al-O Ni-Al-O Mg-Cr-O Zn-Fe-O Co-Al-O Fe-Fe-O Li-Mn-O".split()
    ),
    # full Heusler X2YZ
    "heusler": tuple(
        tuple(p.split("-")) for p in "Cu-Mn-Al Ni-Mn-Ga Co-Mn-Si Fe-V-Al Co-Ti-Al Ni-Ti-Al".split()
    ),
}

# --- random symmetric crystals (pyxtal): species pools -----------------------------------
PYXTAL_ELEMENTS = "Li Na Mg Al Si K Ca Ti V Cr Fe Co Ni Cu Zn Ga Ge Sr Zr Nb Mo Ag Sn Sb W Pt Au Pb Bi C B P S".split()
# cation -> usual oxidation state; anion -> |charge|
PYXTAL_CATIONS = {"Li": 1, "Na": 1, "K": 1, "Mg": 2, "Ca": 2, "Zn": 2, "Sr": 2, "Al": 3, "Ga": 3, "Ti": 4,
                  "Zr": 4, "Sn": 4, "Fe": 2, "Ni": 2, "Cu": 1, "Ag": 1, "Y": 3}
PYXTAL_ANIONS = {"O": 2, "S": 2, "Se": 2, "F": 1, "Cl": 1, "Br": 1, "N": 3, "P": 3}
PYXTAL_METALS = "Li Na Mg Al K Ca Ti V Cr Mn Fe Co Ni Cu Zn Ga Zr Nb Mo Pd Ag Sn Pt Au".split()
N_PYXTAL = {"elemental": 25, "ionic": 40, "intermetallic": 25}

# --- surfaces: facet -> bulk prototype and elements / formulas ---------------------------
SURFACES: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "fcc111": ("fcc", tuple((e,) for e in "Al Cu Ag Au Ni Pd Pt Pb".split())),
    "fcc100": ("fcc", tuple((e,) for e in "Al Cu Ag Ni Pt".split())),
    "bcc110": ("bcc", tuple((e,) for e in "Fe W Mo Nb".split())),
    "bcc100": ("bcc", tuple((e,) for e in "Fe W".split())),
    "hcp0001": ("hcp", tuple((e,) for e in "Mg Ti Zn Co Ru".split())),
    "diamond100": ("diamond", (("Si",), ("Ge",))),
    "diamond111": ("diamond", (("Si",), ("C",))),
    "rocksalt100": ("rocksalt", tuple(tuple(p.split("-")) for p in "Na-Cl Mg-O K-Cl Ca-O Li-F".split())),
}

# --- vacancies: (bulk prototype, species, index of the species to remove) ---------------
VACANCIES: tuple[tuple[str, tuple[str, ...], int], ...] = (
    *(("fcc", (e,), 0) for e in "Cu Al Ni Ag Pt".split()),
    *(("bcc", (e,), 0) for e in "Fe W Mo Na".split()),
    *(("hcp", (e,), 0) for e in "Mg Ti Zn".split()),
    *(("diamond", (e,), 0) for e in "Si Ge C".split()),
    ("rocksalt", ("Na", "Cl"), 0), ("rocksalt", ("Na", "Cl"), 1),
    ("rocksalt", ("Mg", "O"), 0), ("rocksalt", ("Mg", "O"), 1),
    ("zincblende", ("Ga", "As"), 0), ("rutile", ("Ti", "O"), 1), ("perovskite", ("Sr", "Ti", "O"), 2),
)

# --- molecules (ase.build.molecule names, G2 set) ----------------------------------------
MOLECULES = (
    "H2 N2 O2 F2 Cl2 CO NO HF HCl H2O SH2 NH3 PH3 CH4 SiH4 CO2 SO2 HCN C2H2 C2H4 C2H6 CH3OH H2CO C6H6 "
    "CH3CN N2H4"
).split()

TEST_FRACTION = 0.08

# --- the "extra" part: more parents per chemistry, all for training ----------------------
# Every AB formula of the rock-salt/CsCl/zinc-blende/wurtzite lists in the other three of
# those prototypes, every AB2 formula of the fluorite/rutile lists in the other one, the
# elemental solids in the simple lattices they lack, more surfaces and more pyxtal draws
# (including charge-balanced ternary ionic cells). Parents whose id is in the base plan
# (trained on or held out) are dropped, so the base held-out set stays unseen.
AB_PROTOTYPES = ("rocksalt", "cesiumchloride", "zincblende", "wurtzite")
AB2_PROTOTYPES = ("fluorite", "rutile")
ELEMENTAL_LATTICES = ("fcc", "bcc", "hcp", "sc", "diamond")
EXTRA_SURFACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fcc111": ("fcc", tuple(_FCC)),
    "fcc100": ("fcc", tuple(_FCC)),
    "bcc110": ("bcc", tuple(_BCC)),
    "bcc100": ("bcc", tuple(_BCC)),
    "hcp0001": ("hcp", tuple(_HCP)),
    "diamond100": ("diamond", ("C", "Si", "Ge", "Sn")),
    "diamond111": ("diamond", ("Si", "Ge", "Sn")),
}
N_PYXTAL_EXTRA = {"elemental": 60, "ionic": 100, "intermetallic": 80, "ternary_ionic": 60}
PYXTAL_EXTRA_OFFSET = 1000  # pyxtal draw numbers of the extra part start here (ids stay unique)


# --- the "layered" part: layered and molecular solids, all for training -----------------
# The v2 potential's worst validation cases were graphite and the crystals of molecular
# elements, which neither part holds. This part adds every element of the base catalogue in
# its ase.collections.dcdft structure (graphite, black P, the N2/O2/F2/Cl2/Br2/I2 and H2
# crystals, Se/Te chains, ...; for most metals the fcc/bcc/hcp cell again) and layered
# compounds. The dcdft structures are the ones the validation fits E(V) on, so the card
# says that they are training parents (with teacher labels, not WIEN2k's).
LAYERED: dict[str, tuple[tuple[str, ...], ...]] = {
    "2H-MX2": tuple(tuple(p.split("-")) for p in "Mo-S Mo-Se W-S W-Se Nb-Se Ta-S".split()),
    "1T-MX2": tuple(tuple(p.split("-")) for p in "Ti-S Zr-S Hf-S Sn-S Pt-Se".split()),
    "hBN": (("B", "N"),),
}


def _base_elements(base: list[dict]) -> set[str]:
    """The elements of the base part's solids (molecule specs name a molecule, not elements)."""
    return {el for s in base for el in s["species"] if s["group"] != "molecule"}


#: space group of each elemental prototype of the base part, to recognise a dcdft structure as the same crystal
PROTOTYPE_SPACEGROUP = {"fcc": 225, "bcc": 229, "hcp": 194, "diamond": 227, "sc": 221}


def dcdft_twins(held_out: list[dict]) -> dict[str, str]:
    """The layered part's dcdft parents that are the same crystal as a held-out elemental base parent (e.g. dcdft
    Cu is fcc Cu), as ``{dcdft parent id: held-out parent id}``: labelled for training, they would put a held-out
    structure into training."""
    import spglib
    from ase.collections import dcdft

    held = {(s["species"][0], PROTOTYPE_SPACEGROUP[s["prototype"]]): s["id"] for s in held_out
            if s["group"] == "elemental" and s["prototype"] in PROTOTYPE_SPACEGROUP}
    twins = {}
    for atoms in dcdft:
        element = atoms.get_chemical_symbols()[0]
        cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
        key = (element, spglib.get_symmetry_dataset(cell, symprec=1e-3).number)
        if key in held:
            twins[f"elemental:dcdft:{element}"] = held[key]
    return twins


def _layered_specs(rng: np.random.Generator, base: list[dict]) -> list[dict]:
    """Parent specs of the layered part: dcdft solids of the base part's elements and layered compounds."""
    from ase.collections import dcdft

    specs = [{"group": "elemental", "prototype": "dcdft", "species": [el]}
             for el in sorted({a.get_chemical_symbols()[0] for a in dcdft} & _base_elements(base))]
    specs += [{"group": "binary", "prototype": p, "species": list(f)} for p, fs in LAYERED.items() for f in fs]
    return specs


# --- the "broad" part: many more compositions, all for training --------------------------
# v3's held-out error is a per-parent energy offset on compositions it saw in one or two
# structures (NiO, TiC, TiN, SnO2, SrRuO3, Ir3Nb off by 0.2-0.4 eV/atom), i.e. too few
# chemistries, not too few frames. This part holds every metal of the base catalogue as a
# rock-salt MX (X = H, C, N, O, F, S, Cl) and as fluorite and rutile MX2 (X = O, F),
# charge-balanced cubic perovskites ABO3 and ABF3, corundum M2O3, random L1_2 and CsCl
# intermetallics and Heuslers, and one more pyxtal draw per element.
BROAD_METALS = (
    "Li Na K Rb Cs Be Mg Ca Sr Ba Sc Y La Ce Ti Zr Hf V Nb Ta Cr Mo W Mn Re Fe Ru Os Co Rh Ir Ni Pd Pt "
    "Cu Ag Au Zn Cd Al Ga In Tl Sn Pb Bi"
).split()
BROAD_MX_ANIONS = ("H", "C", "N", "O", "F", "S", "Cl")
BROAD_MX2_ANIONS = ("O", "F")
# perovskite sites by oxidation state (ABO3 with q_A + q_B = 6; ABF3 with q_A + q_B = 3)
PEROVSKITE_A = {1: ("Na", "K", "Rb", "Cs"), 2: ("Ca", "Sr", "Ba", "Pb"), 3: ("La", "Y", "Ce")}
PEROVSKITE_B = {
    2: ("Mg", "Zn", "Ni", "Co", "Fe", "Mn", "Cu", "Cd", "Ca"),
    3: ("Al", "Ga", "Sc", "Cr", "Fe", "Co", "Ni", "Mn", "In", "Rh", "V", "Ti"),
    4: ("Ti", "Zr", "Hf", "Sn", "Mn", "Ru", "Ir", "Mo", "Pt", "Ce"),
    5: ("Nb", "Ta", "V"),
}
CORUNDUM_METALS = "Al Ga In Sc Y Ti V Cr Mn Fe Co Ni Rh La Bi".split()
N_BROAD_RANDOM = {"L12": 60, "cesiumchloride": 60, "heusler": 30}


def _broad_specs(rng: np.random.Generator, base: list[dict]) -> list[dict]:
    """Parent specs of the broad part (before dropping those already in the ``base`` plan)."""
    specs = [{"group": "binary", "prototype": "rocksalt", "species": [m, x]}
             for m in BROAD_METALS for x in BROAD_MX_ANIONS]
    specs += [{"group": "binary", "prototype": p, "species": [m, x]}
              for m in BROAD_METALS for x in BROAD_MX2_ANIONS for p in ("fluorite", "rutile")]
    specs += [{"group": "binary", "prototype": "corundum", "species": [m, "O"]} for m in CORUNDUM_METALS]
    for anion, total in (("O", 6), ("F", 3)):
        for qa, a_sites in PEROVSKITE_A.items():
            for b in PEROVSKITE_B.get(total - qa, ()):
                specs += [{"group": "ternary", "prototype": "perovskite", "species": [a, b, anion]}
                          for a in a_sites if a != b]
    for proto, n in N_BROAD_RANDOM.items():  # n distinct random metal combinations per prototype
        drawn: set[tuple[str, ...]] = set()
        while len(drawn) < n:
            drawn.add(tuple(str(x) for x in rng.choice(PYXTAL_METALS, size=3 if proto == "heusler" else 2,
                                                       replace=False)))
        specs += [{"group": "ternary" if proto == "heusler" else "binary", "prototype": proto, "species": list(f)}
                  for f in sorted(drawn)]
    return specs + _pyxtal_per_element(rng, base, 2000)


def _pyxtal_per_element(rng: np.random.Generator, base: list[dict], offset: int) -> list[dict]:
    """One random pyxtal cell of every element of the ``base`` specs; draw numbers start at ``offset``."""
    return [{"group": "pyxtal", "prototype": "random", "species": [el],
             "counts": [int(rng.choice([2, 3, 4, 6, 8]))], "n": offset + i}
            for i, el in enumerate(sorted(_base_elements(base)))]


# --- the "random" part: more random crystals, all for training --------------------------
# v5's held-out energy error is largest on random (pyxtal) cells and binaries (189 and 125
# meV/atom), each an offset of a parent's whole energy surface (Mo, Bi, Zr pyxtal cells; rock-salt
# TiN, TiC, NiO; L1_2 Ir3Nb) although the broad part holds the neighbouring compositions. This part
# tested whether more kinds of local environment help: new random cells. They did not (a fine-tune
# on it left the held-out error unchanged; scripts/distill/README.md, "Random part").
N_PYXTAL_RANDOM = {"elemental": 0, "ionic": 100, "intermetallic": 100}
PYXTAL_RANDOM_OFFSET = 3000


def _random_specs(rng: np.random.Generator, base: list[dict]) -> list[dict]:
    """Parent specs of the random part: a pyxtal cell of every base element, random ionic and intermetallic cells."""
    return _pyxtal_per_element(rng, base, PYXTAL_RANDOM_OFFSET) + _pyxtal_specs(
        rng, N_PYXTAL_RANDOM, PYXTAL_RANDOM_OFFSET)


def _molecule_specs(rng: np.random.Generator, base: list[dict]) -> list[dict]:
    """Parent specs of the molecules part: every molecule of ASE's G2 set made of the base part's elements.

    v3's held-out molecules had force errors near 1 eV/Å (its relaxed H2S is not at the teacher's
    minimum) after training on the base part's 24 molecules; G2 has ~150 with these elements.
    """
    from ase.collections import g2

    elements = _base_elements(base) | {"H", "N", "O", "F", "Cl"}
    return [{"group": "molecule", "prototype": name, "species": [name]}
            for name, atoms in zip(g2.names, g2) if len(atoms) > 1 and set(atoms.get_chemical_symbols()) <= elements]


def _specs(rng: np.random.Generator) -> list[dict]:
    """All parent specs in catalogue order (before shuffling)."""
    specs: list[dict] = []
    for el, protos in ELEMENTAL.items():
        specs += [{"group": "elemental", "prototype": p, "species": [el]} for p in protos]
    for group, table in (("binary", BINARY), ("ternary", TERNARY)):
        for proto, formulas in table.items():
            specs += [{"group": group, "prototype": proto, "species": list(f)} for f in formulas]
    specs += _pyxtal_specs(rng)
    for facet, (bulk_proto, formulas) in SURFACES.items():
        specs += [{"group": "surface", "prototype": facet, "bulk": bulk_proto, "species": list(f)} for f in formulas]
    for bulk_proto, species, remove in VACANCIES:
        specs.append({"group": "vacancy", "prototype": f"{bulk_proto}-vac-{species[remove]}", "bulk": bulk_proto,
                      "species": list(species), "remove": remove})
    specs += [{"group": "molecule", "prototype": m, "species": [m]} for m in MOLECULES]
    return specs


def _pyxtal_specs(rng: np.random.Generator, counts: dict[str, int] = N_PYXTAL, offset: int = 0) -> list[dict]:
    """Random compositions for pyxtal: elemental, charge-balanced ionic, intermetallic.

    ``counts`` gives the number of draws per kind; draw numbers (``n``, part of the id)
    start at ``offset``.
    """
    specs: list[dict] = []
    for n in range(offset, offset + counts["elemental"]):
        el = str(rng.choice(PYXTAL_ELEMENTS))
        specs.append({"group": "pyxtal", "prototype": "random", "species": [el],
                      "counts": [int(rng.choice([2, 3, 4, 6, 8]))], "n": n})
    cations, anions = list(PYXTAL_CATIONS), list(PYXTAL_ANIONS)
    for n in range(offset, offset + counts["ionic"]):
        c, a = str(rng.choice(cations)), str(rng.choice(anions))
        qc, qa = PYXTAL_CATIONS[c], PYXTAL_ANIONS[a]
        g = int(np.gcd(qc, qa))
        nc, na = qa // g, qc // g  # neutral formula unit
        z = max(1, int(rng.integers(1, 4)) if nc + na <= 4 else 1)
        specs.append({"group": "pyxtal", "prototype": "random", "species": [c, a],
                      "counts": [nc * z, na * z], "n": n})
    for n in range(offset, offset + counts["intermetallic"]):
        a, b = (str(x) for x in rng.choice(PYXTAL_METALS, size=2, replace=False))
        ratio = [[1, 1], [2, 2], [1, 2], [1, 3], [2, 4], [3, 3]][int(rng.integers(0, 6))]
        specs.append({"group": "pyxtal", "prototype": "random", "species": [a, b], "counts": ratio, "n": n})
    return specs


def _extra_specs(rng: np.random.Generator, base: list[dict]) -> list[dict]:
    """Parent specs of the extra part (before dropping those already in the ``base`` plan)."""
    specs: list[dict] = []
    for el, have in ELEMENTAL.items():
        specs += [{"group": "elemental", "prototype": p, "species": [el]} for p in ELEMENTAL_LATTICES if p not in have]
    ab = dict.fromkeys(f for proto in AB_PROTOTYPES for f in BINARY[proto])
    ab2 = dict.fromkeys(f for proto in AB2_PROTOTYPES for f in BINARY[proto])
    for formulas, protos in ((ab, AB_PROTOTYPES), (ab2, AB2_PROTOTYPES)):
        specs += [{"group": "binary", "prototype": p, "species": list(f)} for f in formulas for p in protos]
    for facet, (bulk_proto, elements) in EXTRA_SURFACES.items():
        specs += [{"group": "surface", "prototype": facet, "bulk": bulk_proto, "species": [e]} for e in elements]
    specs += _pyxtal_specs(rng, N_PYXTAL_EXTRA, PYXTAL_EXTRA_OFFSET)
    cations, anions = list(PYXTAL_CATIONS), list(PYXTAL_ANIONS)
    for n in range(N_PYXTAL_EXTRA["ternary_ionic"]):
        c1, c2 = (str(x) for x in rng.choice(cations, size=2, replace=False))
        a = str(rng.choice(anions))
        charge = PYXTAL_CATIONS[c1] + PYXTAL_CATIONS[c2]
        qa = PYXTAL_ANIONS[a]
        na = charge // int(np.gcd(charge, qa))
        m = na * qa // charge  # cation pairs per formula unit
        specs.append({"group": "pyxtal", "prototype": "random", "species": [c1, c2, a],
                      "counts": [m, m, na], "n": PYXTAL_EXTRA_OFFSET + 500 + n})
    return specs


def _with_ids(specs: list[dict]) -> list[dict]:
    for s in specs:
        s["id"] = f"{s['group']}:{s['prototype']}:{'-'.join(s['species'])}" + (
            f":{s['n']}" if "n" in s else ""
        )
    ids = [s["id"] for s in specs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate parent ids in the catalogue: {dup}")
    return specs


# training-only parts: name -> (random stream of the seed, spec builder taking the base specs)
TRAINING_PARTS = {"extra": (1, _extra_specs), "layered": (2, _layered_specs), "broad": (3, _broad_specs),
                  "molecules": (4, _molecule_specs), "random": (5, _random_specs)}


def plan(seed: int, part: str = "base") -> list[dict]:
    """Seeded parent list: shuffled, each spec with ``index``, ``seed`` and ``test`` (held out).

    ``part="base"`` is the original catalogue with ~8 % of each group held out;
    ``part="extra"`` adds more parents per chemistry, ``part="layered"`` layered and
    molecular solids, ``part="broad"`` many more compositions, ``part="molecules"`` the
    G2 molecules of the covered elements and ``part="random"`` more random (pyxtal) cells,
    all for training, none
    sharing an id with the base plan (so no held-out parent is ever labelled for training)
    or with a training part listed before it in :data:`TRAINING_PARTS`.
    """
    rng = np.random.default_rng(seed)
    specs = _with_ids(_specs(rng))
    test_ids: set[str] = set()
    for group in sorted({s["group"] for s in specs}):
        members = [s["id"] for s in specs if s["group"] == group]
        k = max(1, round(TEST_FRACTION * len(members)))
        test_ids.update(str(x) for x in rng.choice(members, size=k, replace=False))
    held_out = [s for s in specs if s["id"] in test_ids]
    if part in TRAINING_PARTS:
        # drop the base plan's ids and those of the training parts listed before this one
        taken = {s["id"] for s in specs}
        for name, (stream, make_specs) in TRAINING_PARTS.items():
            rng = np.random.default_rng([seed, stream])
            part_specs = [s for s in _with_ids(make_specs(rng, specs)) if s["id"] not in taken]
            if name == part:
                break
            taken |= {s["id"] for s in part_specs}
        specs = part_specs
        test_ids = set()
    elif part != "base":
        raise ValueError(f"unknown catalogue part {part!r} (base, {', '.join(TRAINING_PARTS)})")
    order = rng.permutation(len(specs))
    out = []
    for index, k in enumerate(order):
        s = dict(specs[k])
        s.update(index=index, seed=int(rng.integers(0, 2**31 - 1)), test=s["id"] in test_ids)
        out.append(s)
    if part == "layered":
        # left out from data version 6 on (v5 trained on them: its card scores those held-out parents apart); after
        # the seeds are drawn, so that every other parent keeps v5's seed and frames
        twins = dcdft_twins(held_out)
        out = [s for s in out if s["id"] not in twins]
    return out


def plan_digest(specs: list[dict]) -> str:
    """Short hash of a plan, to refuse resuming chunks made from a different plan."""
    return hashlib.sha256(json.dumps(specs, sort_keys=True).encode()).hexdigest()[:16]
