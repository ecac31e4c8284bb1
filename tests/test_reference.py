"""The loose-match bar: reference titles of all fields, their vectors kept once per machine, and what it holds
back for a reader whose field the store does not hold (the real model, a real store)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest import reference
from digest.cli import cli
from digest.embed import Embedder
from digest.store import Store

REPO = Path(__file__).resolve().parent.parent
MODEL = "all-MiniLM-L6-v2"


def test_the_reference_titles_are_a_thousand_distinct_titles_with_their_provenance():
    titles = reference.reference_titles()
    assert len(titles) == 1000 and len(set(titles)) == 1000
    assert all(len(t) > 3 and "\n" not in t and "&amp;" not in t for t in titles)
    readme = (REPO / "digest" / "data" / "README.md").read_text()
    assert "CiteULike" in readme and "reference_titles.txt" in readme


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, embedder: Embedder):
        self.inner, self.name, self.texts = embedder, embedder.name, 0

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.fixture
def minilm():
    return Embedder(MODEL)


@pytest.mark.model
def test_the_reference_is_embedded_once_per_machine_and_a_damaged_cache_file_is_made_again(
        tmp_path, monkeypatch, minilm, caplog):
    monkeypatch.setenv("DIGEST_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(reference, "_MEMO", {})
    monkeypatch.setattr(reference, "_BARS", {})
    first = Counting(minilm)
    store = Store(tmp_path / "a.db")
    vectors = reference.reference_vectors(store, first)
    store.close()
    assert first.texts == 1000 and vectors.shape == (1000, 384)
    assert reference.cache_file(MODEL).is_file()
    # another store, another process (no memory): the machine's file, nothing embedded
    monkeypatch.setattr(reference, "_MEMO", {})
    monkeypatch.setattr(reference, "_BARS", {})
    second = Counting(minilm)
    store = Store(tmp_path / "b.db")
    again = reference.reference_vectors(store, second)
    assert second.texts == 0 and np.allclose(again, vectors)
    bar = reference.similarity_bar(store, second)
    store.close()
    assert 0.15 < bar < 0.4  # one pair in ten of random titles is this close (0.25 with this model)
    # a file cut short: said, and made again (here from the first store, which kept the vectors too)
    reference.cache_file(MODEL).write_bytes(b"\x93NUMPY cut")
    monkeypatch.setattr(reference, "_MEMO", {})
    monkeypatch.setattr(reference, "_BARS", {})
    third = Counting(minilm)
    store = Store(tmp_path / "a.db")
    with caplog.at_level(logging.WARNING, logger="digest.reference"):
        assert np.allclose(reference.reference_vectors(store, third), vectors)
    store.close()
    assert third.texts == 0 and "unreadable" in caplog.text and "embedding the reference titles again" in caplog.text
    assert np.load(reference.cache_file(MODEL)).shape == (1000, 384)


@pytest.mark.model
def test_a_cache_folder_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch, minilm, caplog):
    blocked = tmp_path / "models"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("DIGEST_MODEL_DIR", str(blocked))
    monkeypatch.setattr(reference, "_MEMO", {})
    monkeypatch.setattr(reference, "_BARS", {})
    store = Store(tmp_path / "a.db")
    with caplog.at_level(logging.WARNING, logger="digest.reference"):
        assert reference.reference_vectors(store, minilm).shape == (1000, 384)
    store.close()
    assert "could not keep the reference vectors" in caplog.text and "DIGEST_MODEL_DIR" in caplog.text


CORA = """email = "cora@example.org"
timezone = "UTC"
[[interests]]
label = "Coral reefs"
description = "Coral reef ecology, coral bleaching under ocean warming, reef fish populations and marine protected areas."
[[interests]]
label = "Medieval history"
description = "Medieval European monasteries, manuscripts and trade in the twelfth century."
"""


@pytest.mark.model
def test_a_reader_whose_field_the_store_does_not_hold_gets_a_quiet_day_that_says_why(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "cora.toml").write_text(CORA)
    (profiles / "ada.toml").write_text((REPO / "profiles" / "ada.toml").read_text())
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nprofiles_dir = "{profiles}"\n[model]\nname = "{MODEL}"\n')
    run = CliRunner().invoke
    assert run(cli, ["--config", str(config), "ingest", str(REPO / "sample_inbox")]).exit_code == 0
    cora = run(cli, ["--config", str(config), "rank", "cora", "--limit", "40"])
    assert cora.exit_code == 0, cora.output
    assert "cora: 0 picked of" in cora.output, cora.output
    assert "cleared the floor but were held back as loose matches" in cora.output
    assert "held back: a loose match (nothing you named is closer than" in cora.output
    held = [line for line in cora.output.splitlines() if "held back: a loose match" in line]
    title = next(line for line in cora.output.splitlines()[cora.output.splitlines().index(held[0]) - 1:]
                 if line.strip())[8:].strip().rstrip("…")
    found = run(cli, ["--config", str(config), "rank", "cora", "--find", title[:40]])
    assert "held back as a loose match: it clears the floor" in found.output, found.output
    # ada's field is in the store: her picks are what they were
    ada = run(cli, ["--config", str(config), "rank", "ada"])
    assert "held back as loose matches" not in ada.output and "ada: 0 picked" not in ada.output, ada.output
    sent = run(cli, ["--config", str(config), "send", "--any-day", "--outbox", str(tmp_path / "out")])
    assert sent.exit_code == 0, sent.output
    assert "cora: 0 papers written" in sent.output, sent.output
    note = next((tmp_path / "out").glob("cora-*.eml")).read_text()
    assert "hold little of your field" in " ".join(note.replace("=\n", "").split())


def test_a_missing_or_empty_titles_file_means_no_bar_not_a_crash(tmp_path, monkeypatch, caplog):
    """A damaged install ranks as before the bar existed (nothing held back), and says why."""
    empty = tmp_path / "reference_titles.txt"
    empty.write_text("")
    monkeypatch.setattr(reference, "TITLES_FILE", empty)
    reference.reference_titles.cache_clear()
    try:
        store = Store(tmp_path / "a.db")
        assert reference.similarity_bar(store, Embedder(MODEL)) is None  # the model is never loaded for it
        monkeypatch.setattr(reference, "TITLES_FILE", tmp_path / "gone.txt")
        reference.reference_titles.cache_clear()
        with caplog.at_level(logging.WARNING, logger="digest.reference"):
            assert reference.similarity_bar(store, Embedder(MODEL)) is None
        assert "gone.txt: cannot be read" in caplog.text and "no paper is held back" in caplog.text
        store.close()
    finally:
        reference.reference_titles.cache_clear()
