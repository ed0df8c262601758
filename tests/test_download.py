"""Upstream ALIGNN's published models by name: download, cache, load, and failures. No network: the
registry entry under test points at a local file:// address."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from alignn_ase import (
    ALIGNNCalculator,
    CheckpointError,
    UnknownModelError,
    available_models,
    load_model,
    upstream_models,
)
from alignn_ase import download
from alignn_ase.cli import main

from .conftest import UPSTREAM

NAME = "test_upstream_model"


@pytest.fixture
def published(tmp_path, monkeypatch):
    """An upstream-layout zip (one folder holding config.json + best_model.pt, as upstream's Figshare zips) at a
    file:// address registered as NAME, and an empty cache; returns the zip's path."""
    zpath = tmp_path / "site" / "model.zip"
    zpath.parent.mkdir()
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:  # compressed, as upstream's zips are
        for f in (UPSTREAM / "pure_2_2_64_cgcnn").iterdir():
            zf.write(f, f"pure_2_2_64_cgcnn/{f.name}")
    monkeypatch.setenv("ALIGNN_ASE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(download._registry()["models"], NAME, {"url": zpath.as_uri(), "registry": "test"})
    return zpath


def _energy(model_or_path, atoms):
    atoms = atoms.copy()
    atoms.calc = ALIGNNCalculator(model_or_path, dtype="float64")
    return atoms.get_potential_energy(), atoms.get_forces()


def test_a_published_model_is_downloaded_once_and_gives_the_checkpoints_numbers(published, tmp_path):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    e_name, f_name = _energy(NAME, atoms)
    e_path, f_path = _energy(UPSTREAM / "pure_2_2_64_cgcnn", atoms)
    assert e_name == e_path and np.array_equal(f_name, f_path)
    cached = tmp_path / "cache" / "upstream" / f"{NAME}.zip"
    assert cached.is_file() and cached.read_bytes() == published.read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no partial files left
    published.unlink()  # offline from now on: the cache serves it
    model = load_model(f"upstream:{NAME}")
    assert model.source == str(cached)
    assert model.card.startswith(f"# {NAME} (upstream ALIGNN)") and published.as_uri() in model.card
    assert load_model(UPSTREAM / "pure_2_2_64_cgcnn").card is None  # the same weights elsewhere: no registry card


@pytest.mark.parametrize("content, match", [(b"<html>rate limited</html>", "did not give a zip archive"),
                                            (None, "cannot download upstream model")])
def test_failed_downloads_leave_nothing_in_the_cache(published, tmp_path, content, match):
    if content is None:
        published.unlink()  # unreachable
    else:
        published.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        load_model(NAME)
    if content is None:  # says where to put a zip fetched by other means
        assert str(tmp_path / "cache" / "upstream" / f"{NAME}.zip") in str(err.value)
    assert list((tmp_path / "cache" / "upstream").iterdir()) == []


@pytest.mark.parametrize("spoil", ["checksum", "stream"])
def test_a_corrupt_download_is_refused(published, tmp_path, spoil):
    """Damaged compressed weights: garbage mid-stream fails the member's checksum; a first byte of 0xFF declares a
    reserved deflate block type, which zlib refuses (zlib.error, which escaped raw). Either way a CheckpointError
    and nothing in the cache."""
    data = bytearray(published.read_bytes())
    with zipfile.ZipFile(published) as zf:
        member = max(zf.infolist(), key=lambda info: info.compress_size)  # the weights
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    if spoil == "stream":
        data[start] = 0xFF
    else:
        i = start + member.compress_size // 2
        data[i:i + 64] = bytes(range(64))
    published.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt download"):
        load_model(NAME)
    assert list((tmp_path / "cache" / "upstream").iterdir()) == []


def test_shipped_names_and_paths_come_before_upstream_names(published, tmp_path, monkeypatch):
    # the upstream registry holds a formation_energy_peratom too; the bare name is the shipped property model
    assert "formation_energy_peratom" in upstream_models()
    assert load_model("formation_energy_peratom").source.endswith("formation-energy-distill-v6")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(UPSTREAM / "pure_2_2_64_cgcnn", tmp_path / NAME)  # a local folder of that name
    assert load_model(NAME).source == NAME
    assert not (tmp_path / "cache").exists()
    assert load_model(f"upstream:{NAME}").source.endswith(f"{NAME}.zip")
    with pytest.raises(UnknownModelError, match="upstream_models"):
        load_model("upstream:no_such_model")


def test_the_registry_lists_upstreams_published_models():
    models = upstream_models()
    assert len(models) > 200
    assert all(m["url"].startswith("https://ndownloader.figshare.com/") for m in models.values())
    # upstream's force fields and the paper's property models
    for name in ("matpes_r2scan", "mps", "v12.2.2024_dft_3d_307k", "jv_formation_energy_peratom_alignn",
                 "qm9_U0_alignn"):
        assert name in models
    # a shipped name shadows an upstream one (reachable as upstream:<name>); the README names the only such case
    assert set(models) & set(available_models()) == {"formation_energy_peratom"}
    source = json.loads((Path(download.__file__).parent / "data" / "upstream_models.json").read_text())["source"]
    assert source.startswith("alignn ")


def test_the_models_command_lists_and_searches(published, capsys):
    assert main(["models", "--search", "qm9_U0"]) == 0
    out = capsys.readouterr().out
    assert "qm9_U0_alignn" in out and "matpes" not in out and "default" not in out
    load_model(NAME)
    main(["models", "--search", NAME])
    assert any(NAME in line and line.endswith("[cached]") for line in capsys.readouterr().out.splitlines())


def test_an_unwritable_cache_is_named(published, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("ALIGNN_ASE_CACHE", str(tmp_path / "a_file" / "cache"))
    with pytest.raises(CheckpointError, match="cannot write to the model cache .* set ALIGNN_ASE_CACHE"):
        load_model(NAME)


def test_a_cache_folder_without_write_access_is_named(published, tmp_path, monkeypatch):
    (tmp_path / "cache" / "upstream").mkdir(parents=True)  # exists, but (a read-only mount, say) takes no file

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache" / "upstream"))

    monkeypatch.setattr(download.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(CheckpointError, match="cannot write to the model cache .* set ALIGNN_ASE_CACHE"):
        load_model(NAME)


def test_a_server_giving_no_usable_length_still_serves_the_model(published, monkeypatch):
    """A Content-Length that is not a number (raw ValueError before) only costs the progress bar its total."""
    opened = download.urllib.request.urlopen

    def urlopen(request, timeout):
        response = opened(request, timeout=timeout)
        response.headers.replace_header("Content-Length", "abc")
        return response

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    assert load_model(NAME).source.endswith(f"{NAME}.zip")
