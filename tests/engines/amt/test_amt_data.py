"""The training corpus: licence rules, GM programs, conversion, split, arrays and manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import music21
import numpy as np
import pytest

from engines.amt import vocab as V
from engines.amt.data import build_corpus
from engines.amt.data.arrays import DATA_DIR, MANIFEST_FILE, TOKENS_FILE, load_tokens
from engines.amt.data.assemble import is_valid_piece, transpose
from engines.amt.data.convert import score_to_piece
from engines.amt.data.instruments import part_program, program_from_names
from engines.amt.data.licences import classify, read_licence
from engines.amt.data.sources import (
    ALLOWED_COLLECTIONS,
    EXCLUDED_COLLECTIONS,
    corpus_root,
    list_files,
)

SMALL_COLLECTIONS = ["corelli", "lusitano", "liliuokalani"]  # one small file each


# -- licences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "allowed", "kind"),
    [
        ([], True, "none"),
        (["© 2014, Creative Commons License (CC-BY)"], True, "free"),
        (["Copyright 2022 X: released as CC0/Public Domain"], True, "free"),
        (["Copyright ©"], True, "placeholder"),
        (["PDF © 2004 Margaret Greentree"], True, "layout"),
        (["Rights to all derivative electronic formats reserved."], False, "restricted"),
        (["Refer to licensing agreement for further details."], False, "restricted"),
        (["PDF © 2004 Margaret Greentree - used by permission"], False, "restricted"),
        (["© UT ORPHEUS 2003"], False, "claim"),
        (["UT ORPHEUS EDIZIONI 2003"], False, "claim"),
    ],
)
def test_licence_rules(texts: list[str], allowed: bool, kind: str) -> None:
    licence = classify(texts)
    assert (licence.allowed, licence.kind) == (allowed, kind)


@pytest.mark.parametrize(
    ("rel", "allowed"),
    [
        ("bach/bwv277.krn", False),  # CCARH: derivative formats reserved
        ("monteverdi/madrigal.5.4.mxl", False),  # publisher's edition notice
        ("corelli/opus3no1/1grave.xml", True),  # CC-BY
        ("bach/bwv1.6.mxl", True),  # notice on the PDF layout only
        ("mozart/k80/movement1.mxl", True),  # no rights text
    ],
)
def test_licences_read_from_corpus_files(rel: str, allowed: bool) -> None:
    assert read_licence(corpus_root() / rel).allowed is allowed


# -- instruments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "program"),
    [
        ("Violin I", 40),
        ("Viola", 41),
        ("Violoncello", 42),
        ("Soprano", 52),
        ("Bass", 52),
        ("Canto", 52),
        ("Piano", 0),
        ("Harpsichord", 0),
        ("Horn 2", 60),
        ("Basso continuo", 43),
        ("Bass Clarinet", 71),
        ("Oboe", 68),
        ("Flauto traverso", 73),
        ("Tromba", 56),
    ],
)
def test_gm_program_from_part_names(name: str, program: int) -> None:
    assert program_from_names(None, name) == program


def test_unnamed_parts_use_the_collection_default() -> None:
    assert part_program("ryansMammoth/AcaciaReel.abc", [None, ""], None) == (40, "default")
    assert part_program("miscFolk/americanfifeopus.abc", [None], None) == (72, "default")
    assert part_program("mozart/k545/x.mxl", ["Part 1"], None) == (0, "default")
    assert part_program("x/y.xml", ["Part 1"], 68) == (68, "music21")


# -- sources, conversion, split ------------------------------------------------------------


def test_corpus_files_are_allowed_and_deduplicated() -> None:
    files = list_files(corpus_root())
    collections = {f.split("/", 1)[0] for f in files}
    assert collections == set(ALLOWED_COLLECTIONS)
    assert not collections & set(EXCLUDED_COLLECTIONS)
    assert "beethoven/opus18no1/movement1.mxl" in files
    assert "beethoven/opus18no1/movement1.krn" not in files  # same movement as the .mxl
    assert not [f for f in files if f.endswith((".rntxt", ".mus", ".musx"))]
    with pytest.raises(ValueError, match="not allowed"):
        list_files(corpus_root(), ("essenFolksong",))


def test_score_to_piece_programs_ties_chords_tempo() -> None:
    m21: Any = music21  # music21's stubs leave these constructors untyped
    stream, note, chord, harmony = m21.stream, m21.note, m21.chord, m21.harmony
    meter, tempo, tie = m21.meter, m21.tempo, m21.tie
    cello = stream.Part()
    cello.partName = "Violoncello"
    cello.append(meter.TimeSignature("4/4"))
    cello.append(tempo.MetronomeMark(number=60))  # one quarter = 1 s = 100 ticks
    first, second = note.Note("C3", quarterLength=1), note.Note("C3", quarterLength=1)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    cello.append([first, second])
    cello.append(harmony.ChordSymbol("C"))  # not sounding: ignored
    cello.append(chord.Chord(["E3", "G3"], quarterLength=2))
    voice = stream.Part()
    voice.partName = "Soprano"
    voice.append(note.Note("C5", quarterLength=4))
    score = stream.Score([cello, voice])
    piece = score_to_piece(score, "test/x", "test/x.xml", expand_repeats=False)
    assert piece.programs == [42, 52]
    tuples = [tuple(piece.compound[i : i + 5]) for i in range(0, len(piece.compound), 5)]
    assert tuples == [
        (0, 200, 48, 42, 72),  # the tied pair became one 2-s note
        (0, 400, 72, 52, 72),
        (200, 200, 52, 42, 72),
        (200, 200, 55, 42, 72),
    ]


def test_split_is_by_piece_and_about_five_percent() -> None:
    ids = [f"ryansMammoth/tune{i}.abc" for i in range(4000)]
    share = sum(map(is_valid_piece, ids)) / len(ids)
    assert 0.04 < share < 0.06
    assert [is_valid_piece(i) for i in ids[:50]] == [is_valid_piece(i) for i in ids[:50]]


def test_transpose_keeps_drums_and_rejects_out_of_range() -> None:
    compound = [0, 10, 60, 40, 72, 5, 10, 36, V.DRUMS, 72]
    assert transpose(compound, 3) == [0, 10, 63, 40, 72, 5, 10, 36, V.DRUMS, 72]
    assert transpose([0, 10, 126, 0, 72], 2) is None


# -- built arrays and manifest ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder run end to end on three small corpus files."""
    out = tmp_path_factory.mktemp("corpus")
    code = build_corpus.main(
        [
            "--out", str(out), "--cache", str(out / "cache"), "--card", str(out / "card.md"),
            "--no-progress", "--collections", *SMALL_COLLECTIONS,
        ]
    )  # fmt: skip
    assert code == 0
    return out


def check_corpus(folder: Path, max_bytes: int = 15_000_000) -> dict[str, Any]:
    """Shape, dtype, id range and size of the arrays; the manifest agrees and is clean."""
    manifest_path, tokens_path = folder / MANIFEST_FILE, folder / TOKENS_FILE
    assert manifest_path.is_file(), f"{manifest_path} missing"
    assert tokens_path.is_file(), f"{manifest_path} exists but {tokens_path} does not"
    assert tokens_path.stat().st_size <= max_bytes
    train, valid = load_tokens(tokens_path)
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    for array in (train, valid):
        assert array.dtype == np.uint16 and array.shape[1] == V.CONTEXT_SIZE
        if array.size:
            assert int(array.max()) < V.VOCAB_SIZE
            assert set(np.unique(array[:, 0]).tolist()) <= {V.AUTOREGRESS, V.ANTICIPATE}
    assert (train.size + valid.size) * 2 <= max_bytes  # raw uint16 within the budget too
    assert manifest["totals"]["train_sequences"] == len(train) > 0
    assert manifest["totals"]["valid_sequences"] == len(valid)
    assert set(manifest["collections"]) <= set(ALLOWED_COLLECTIONS)
    splits: dict[str, set[str]] = {"train": set(), "valid": set()}
    for piece_id, _title, _composer, split, _events, _programs in manifest["pieces"]:
        assert piece_id.split("/", 1)[0] in ALLOWED_COLLECTIONS
        splits[split].add(piece_id)
    assert not splits["train"] & splits["valid"]
    if len(valid):
        assert set(np.unique(valid[:, 0]).tolist()) == {V.AUTOREGRESS}  # unaugmented
    return manifest


def test_builder_on_three_corpus_files(small_build: Path) -> None:
    manifest = check_corpus(small_build)
    assert set(manifest["collections"]) == set(SMALL_COLLECTIONS)
    assert manifest["augmentation"]["train_copies_per_piece"] == 12  # far below the budget
    assert "corelli" in manifest["credits"]
    card = (small_build / "card.md").read_text()
    assert "Michael Scott Cuthbert" in card and "CC-BY" in card
    assert "essenFolksong" in card  # exclusions are listed with their reason


def test_builder_resumes_from_its_cache(small_build: Path) -> None:
    cached = sorted((small_build / "cache").rglob("*.json"))
    assert len(cached) == 3
    before = np.load(small_build / TOKENS_FILE)["train"]
    again = build_corpus.main(
        [
            "--out", str(small_build), "--cache", str(small_build / "cache"),
            "--card", str(small_build / "card.md"), "--no-progress",
            "--collections", *SMALL_COLLECTIONS,
        ]
    )  # fmt: skip
    assert again == 0
    assert np.array_equal(np.load(small_build / TOKENS_FILE)["train"], before)  # deterministic


def test_committed_corpus(small_build: Path) -> None:
    """The committed arrays once they exist; until then the same checks on a fresh build."""
    manifest_exists = (DATA_DIR / MANIFEST_FILE).is_file()
    arrays_exist = (DATA_DIR / TOKENS_FILE).is_file()
    if manifest_exists or arrays_exist:
        manifest = check_corpus(DATA_DIR)  # fails loudly if only one of the two is there
        assert manifest["totals"]["train_tokens"] >= 1_000_000
        assert {"essenFolksong", "palestrina", "trecento", "josquin"} <= set(
            manifest["excluded_collections"]
        )
    else:
        check_corpus(small_build)


def test_cached_only_assembles_what_is_cached(small_build: Path, tmp_path: Path) -> None:
    args = ["--cache", str(small_build / "cache"), "--card", str(tmp_path / "card.md")]
    # one more collection requested than cached: it is left out, not converted
    code = build_corpus.main(
        [*args, "--out", str(tmp_path), "--no-progress", "--cached-only",
         "--collections", *SMALL_COLLECTIONS, "verdi"]
    )  # fmt: skip
    assert code == 0
    manifest = check_corpus(tmp_path)
    assert set(manifest["collections"]) == set(SMALL_COLLECTIONS)
    assert np.array_equal(
        np.load(tmp_path / TOKENS_FILE)["train"], np.load(small_build / TOKENS_FILE)["train"]
    )
