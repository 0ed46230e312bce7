"""manifest.json (what went into the arrays) and docs/data-card.md rendered from it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.amt import vocab as V
from engines.amt.data.sources import ALLOWED_COLLECTIONS, EXCLUDED_COLLECTIONS

if TYPE_CHECKING:
    from engines.amt.data.assemble import SplitResult

FOLK = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk")
CREDITS = {
    "corelli": "Corelli, Trio Sonata Op. 3 No. 1: encoding © 2014 Michael Scott Cuthbert, "
    "Creative Commons Attribution (CC-BY). Credit: encoded by Michael Scott Cuthbert.",
    "luca": "luca/gloria.xml: encoding 2010 Michael Scott Cuthbert, CC-BY-SA 3.0.",
    "ciconia": "Ciconia, Quod jactatur: encoding 2010 Michael Scott Cuthbert, CC-BY-SA 3.0.",
    "beach": "Amy Beach, Prayer of a Tired Child (1915, public domain): engraving 2017 "
    "Michael Scott Cuthbert, CC-BY-SA.",
    "schumann_clara": "Clara Schumann, Polonaises Op. 1: typeset by Cypressdome for IMSLP, "
    "CC BY-SA 4.0.",
    "lusitano": "Lusitano: encoding 2022 Michael Scott Asato Cuthbert, CC0.",
    "liliuokalani": "Liliuokalani (1884, public domain): encoding by MSAC, CC0.",
    "weber": "Weber: encoding by Oliver Seely, released to the public domain (1998).",
}


def _music21_version() -> str:
    try:
        import music21

        return str(music21.__version__)
    except ImportError:  # pragma: no cover - the builder always has music21
        return "unknown"


def build_manifest(
    records: list[dict[str, Any]],
    valid_pieces: list[dict[str, Any]],
    copies: float,
    train: SplitResult,
    valid: SplitResult,
    seed: int,
) -> dict[str, Any]:
    from engines.amt.data.assemble import SHIFTS, VALID_PERCENT

    valid_ids = {p["piece_id"] for p in valid_pieces}
    collections: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"files": 0, "files_used": 0, "pieces": 0, "valid_pieces": 0, "events": 0}
    )
    pieces: list[list[Any]] = []
    skipped: list[dict[str, str]] = []
    licences: dict[str, list[str]] = defaultdict(list)
    for record in records:
        entry = collections[record["collection"]]
        entry["files"] += 1
        lic = record["licence"]
        if lic["text"]:
            licences[f"{lic['kind']}: {lic['text']}"].append(record["path"])
        if not lic["allowed"]:
            skipped.append({"path": record["path"], "reason": f"licence ({lic['kind']})"})
            continue
        if record["error"]:
            skipped.append(
                {
                    "path": record["path"],
                    "reason": "parse error: " + record["error"].splitlines()[0][:200],
                }
            )
            continue
        entry["files_used"] += 1
        for piece in record["pieces"]:
            events = len(piece["compound"]) // V.COMPOUND_SIZE
            split = "valid" if piece["piece_id"] in valid_ids else "train"
            entry["pieces"] += 1
            entry["valid_pieces"] += split == "valid"
            entry["events"] += events
            pieces.append(
                [
                    piece["piece_id"],
                    piece["title"],
                    piece["composer"],
                    split,
                    events,
                    sorted(set(piece["programs"])),
                ]
            )
    programs: Counter[int] = Counter()
    for piece in pieces:
        programs.update(piece[5])
    return {
        "description": "AMT training corpus built from the music21 corpus by engines/amt/data/build_corpus.py",
        "source": f"music21 {_music21_version()} corpus",
        "arrays": {
            "file": "tokens.npz",
            "dtype": "uint16",
            "sequence_length": V.CONTEXT_SIZE,
            "vocab_size": V.VOCAB_SIZE,
        },
        "totals": {
            "train_sequences": len(train.sequences),
            "valid_sequences": len(valid.sequences),
            "train_tokens": len(train.sequences) * V.CONTEXT_SIZE,
            "valid_tokens": len(valid.sequences) * V.CONTEXT_SIZE,
            "train_pieces_used": train.pieces_used,
            "valid_pieces_used": valid.pieces_used,
            "pieces": len(pieces),
            "files": len(records),
            "events": sum(p[4] for p in pieces),
        },
        "split": {
            "rule": f"sha1(piece_id) first 8 hex digits mod 100 < {VALID_PERCENT} -> valid",
            "seed": seed,
        },
        "augmentation": {
            "train_copies_per_piece": copies,
            "transpositions": list(SHIFTS),
            "augmentations": "even copies none (AUTOREGRESS); odd copies a kind drawn from 1..9",
            "valid": "one copy, written key, unaugmented",
        },
        "tokenize_stats": {"train": asdict(train.stats), "valid": asdict(valid.stats)},
        "gm_programs": {str(k): v for k, v in sorted(programs.items())},
        "collections": {
            name: collections[name] for name in ALLOWED_COLLECTIONS if name in collections
        },
        "excluded_collections": EXCLUDED_COLLECTIONS,
        "skipped_files": skipped,
        "licence_texts": dict(sorted(licences.items())),
        "credits": {k: v for k, v in CREDITS.items() if collections.get(k, {}).get("files_used")},
        "pieces_columns": ["piece_id", "title", "composer", "split", "events", "gm_programs"],
        "pieces": pieces,
    }


def _works(manifest: dict[str, Any], collection: str) -> str:
    rows = [p for p in manifest["pieces"] if p[0].split("/", 1)[0] == collection]
    if collection in FOLK:  # thousands of tunes: the manifest lists every one
        names = sorted({p[0].split("/")[-1].split("#")[0] for p in rows})
        shown = ", ".join(n.rsplit(".", 1)[0] for n in names[:30])
        more = f" … ({len(names) - 30} more files)" if len(names) > 30 else ""
        return f"{len(rows)} tunes from {len(names)} files: {shown}{more}"
    if len(rows) > 60:  # e.g. the Bach chorales: file names are their BWV numbers
        stems = [p[0].split("/")[-1].rsplit(".", 1)[0] for p in rows]
        return f"{len(rows)} pieces: " + ", ".join(stems)
    return "; ".join(
        f"{p[1] or p[0].split('/', 1)[1]}" + (f" ({p[2]})" if p[2] else "") for p in rows
    )


def render_card(manifest: dict[str, Any]) -> str:
    t = manifest["totals"]
    aug = manifest["augmentation"]
    lines = [
        "# Data card: the AMT default model's training corpus",
        "",
        "Generated by `python -m engines.amt.data.build_corpus --out engines/amt/data/ --jobs 1`",
        f"from the {manifest['source']}; the full list of pieces with their split is in",
        "`engines/amt/data/manifest.json`.",
        "",
        "## Totals",
        "",
        "| split | sequences (1024 tokens) | tokens | pieces |",
        "| --- | ---: | ---: | ---: |",
        f"| train | {t['train_sequences']:,} | {t['train_tokens']:,} | {t['train_pieces_used']:,} |",
        f"| validation | {t['valid_sequences']:,} | {t['valid_tokens']:,} | {t['valid_pieces_used']:,} |",
        "",
        f"{t['files']:,} files, {t['pieces']:,} pieces, {t['events']:,} note events before augmentation.",
        "Pieces shorter than 100 notes or 10 s are dropped by the AMT filters (counted in",
        "`tokenize_stats`).",
        "",
        "## Processing",
        "",
        "- Each part gets a General MIDI program from its instrument / part name (violin 40,",
        "  viola 41, cello 42, voices → choir 52, keyboards → piano 0, winds and brass as their",
        "  GM programs); parts naming no instrument use a collection default (fiddle 40 for the",
        "  fiddle-tune books, piccolo 72 for fife music, else piano 0). Repeats are expanded",
        "  where music21 can; tempo from the score's metronome marks (else 120 qpm).",
        "- Split by piece (a hash of the piece id, ~5% validation), never by sequence.",
        f"- Training: {aug['train_copies_per_piece']} copies per piece, transposed by different",
        "  semitone steps (copy 0 in the written key, the others drawn from -5..+6); even copies",
        "  unaugmented (AUTOREGRESS), odd copies with anticipated controls of a kind drawn from",
        "  the reference's 1..9 (1 spans, 2-5 random events, 6-9 instrument subsets), as the",
        "  infill / accompany / bridge tasks need. Validation: written key, no augmentation.",
        "",
        "## Collections and works",
        "",
        "| collection | files used / files | pieces (valid) | note events |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, c in manifest["collections"].items():
        lines.append(
            f"| {name} | {c['files_used']} / {c['files']} | {c['pieces']} ({c['valid_pieces']}) | {c['events']:,} |"
        )
    lines += ["", "Works per collection:", ""]
    for name in manifest["collections"]:
        lines.append(f"- **{name}**: {_works(manifest, name)}")
    lines += [
        "",
        "## Licences and credits",
        "",
        "All compositions are in the public domain. Encodings come with music21 (BSD-licensed",
        "software; corpus distributed with the encoders' permission, see music21's",
        "`corpus/license.txt`). Each file's embedded rights text was read; files whose text",
        "restricts use were skipped (below). Credits:",
        "",
    ]
    lines += [f"- {text}" for text in manifest["credits"].values()]
    lines += ["", "Rights texts found in the files used or skipped (decision: text → files):", ""]
    for text, paths in manifest["licence_texts"].items():
        lines.append(f"- `{text[:160]}` → {len(paths)} file(s), e.g. {paths[0]}")
    lines += ["", "## Exclusions", "", "Collections:", ""]
    lines += [f"- {name}: {why}" for name, why in manifest["excluded_collections"].items()]
    lines += ["", "Files:", ""]
    lines += [f"- {s['path']}: {s['reason']}" for s in manifest["skipped_files"]] or ["- none"]
    lines += [
        "",
        "Also not used: `.rntxt` Roman-numeral analyses (not notes) and Finale binaries",
        "(`.mus`, `.musx`) that duplicate an XML file of the same piece.",
        "",
    ]
    return "\n".join(lines)


def dumps(manifest: dict[str, Any]) -> str:
    """JSON with one line per piece, so the file stays small and diffs stay readable."""
    import json

    head = {k: v for k, v in manifest.items() if k != "pieces"}
    text = json.dumps(head, indent=1, ensure_ascii=False)
    rows = ",\n".join("  " + json.dumps(p, ensure_ascii=False) for p in manifest["pieces"])
    return text[:-2] + ',\n "pieces": [\n' + rows + "\n ]\n}\n"


def write_card(manifest: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_card(manifest))
