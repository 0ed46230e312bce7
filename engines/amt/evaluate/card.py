"""Render the bundled model's MODEL_CARD.md from its ``training.json`` and ``evaluation.json``.

The card's numbers are never typed by hand: ``tutti train --export`` writes training.json,
``tutti eval --record`` writes evaluation.json, and this renders the card from both, so a
retrained model gets a truthful card by re-running three commands.

    python -m engines.amt.evaluate.card [--weights engines/amt/weights]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engines.amt.models import BUNDLED_DIR

PICTURE = "piano-rolls.png"  # `tutti eval --out FOLDER` draws it; copied beside the card

TEMPLATE = """\
# Model card: Tutti's bundled AMT model

The default weights of Tutti's AMT engine: a small GPT-2 in the Anticipatory Music
Transformer token format, trained here on public-domain scores so that Tutti makes music
out of the box on a laptop CPU with no network. Real checkpoints (e.g.
`stanford-crfm/music-small-800k`) stay one setting away: `tutti serve --amt-model ID_OR_DIR`.

## Architecture

- GPT-2 (`transformers.GPT2LMHeadModel`): {n_layer} layers, width {n_embd}, {n_head} heads,
  context {n_positions}.
- Vocabulary {vocab_size:,}: the AMT arrival-time format (`engines/amt/vocab.py`); input and
  output embeddings tied. {params_m:.1f} M parameters ({embed_m:.1f} M of them the embedding
  matrix); `model.safetensors` is fp16, weights only ({size_mb:.1f} MB). Loaded as fp32 on
  the CPU, bf16/fp16 on a GPU.
- `bos_token_id` / `eos_token_id` unset (GPT-2's 50256 would be a control-note id here).

## Data

The music21 corpus's public-domain scores (Bach chorales, string quartets by Haydn, Mozart
and Beethoven, Monteverdi madrigals, fiddle-tune collections, ...), converted with General
MIDI programs per part, transposition-augmented, split into train and validation by piece.
Works, token counts, licences, credits (Corelli encoding CC-BY, Michael Scott Cuthbert) and
exclusions: `docs/data-card.md`; piece list and split: `engines/amt/data/manifest.json`.
Instruments seen in training (GM programs): {instruments}.

## Training

- Objective: next-token prediction with each position's softmax restricted to the ids valid
  in its slot (time / duration / note: the blocks the sampler allows at inference), the
  time slot's only over onsets not before the previous event's (`loss.onsets_not_in_past`,
  {onsets_rule}); anticipated control tokens are inputs, not targets.
- AdamW (beta {beta1}/{beta2}, weight decay {weight_decay} on matrices), peak learning rate
  {lr}, warmup {warmup_steps} steps then cosine; batch {batch_tokens:,} tokens (packed
  1024-token sequences); dropout {dropout}; seed {seed}. Config:
  `engines/amt/train/default.toml`.
- Steps: {step:,} ({tokens_seen:,} tokens seen, {epochs:.2f} passes over the training set);
  best validation at step {best_step:,}.{hardware}

## Run history

{run_history}

## Evaluation

Validation NLL per event (nats; an event's time, duration and note tokens summed, each
slot-normalised), {valid_sequences} validation sequences, {valid_events:,} events
(`tutti eval`):

| model | nats/event | vs trigram |
|---|---|---|
| this model, as sampled (onsets never before the previous event's) | {nll_model:.3f} | {vs_model} |
| this model, onsets in the past allowed | {nll_free:.3f} | {vs_free} |
| same architecture, untrained | {nll_untrained:.3f} | {vs_untrained} |
| unigram event model (add-k) | {nll_unigram:.3f} | {vs_unigram} |
| trigram event model (Kneser-Ney) | {nll_trigram:.3f} | 0.0 % |

The test suite's reference NLL: **{reference:.3f} nats per event** on {reference_what}
({reference_events:,} events; the trigram model: {reference_trigram}); the test
`tests/engines/amt/test_amt_bundled.py` recomputes both from the shipped weights and data.

{pieces} generated {seconds:g} s pieces (top_p {top_p}, temperature {temperature}, seeds
0-{last_seed}) against {valid_pieces} validation pieces:

| statistic | generated | validation |
|---|---|---|
| notes in the estimated key | {in_key_gen:.1f} % | {in_key_val:.1f} % |
| pitch-class histogram distance (total variation) | {tv:.3f} | 0 |
| notes per second | {nps_gen:.2f} | {nps_val:.2f} |
| mean polyphony | {poly_gen:.2f} | {poly_val:.2f} |
| valid MIDI with at least 20 notes | {valid_midi}/{pieces} | - |
{picture}
Targets (issue 7): {targets}

## Retraining

```
python -m engines.amt.data.build_corpus --out engines/amt/data/   # optional; needs music21
tutti train --config engines/amt/train/default.toml --run-dir RUN --max-minutes 50
# ... repeat the same command to continue (it resumes); then:
tutti train --config engines/amt/train/default.toml --run-dir RUN --export-only \\
    --export engines/amt/weights
tutti eval --record engines/amt/weights/evaluation.json --out EVAL
cp EVAL/piano-rolls.png engines/amt/weights/
python -m engines.amt.evaluate.card
```

## Limitations

Trained on a few million tokens of mostly Baroque/Classical chamber, choral and folk-fiddle
music: expect that style, few instruments (strings, choir, piano, some winds and brass), no
drums. A small model trained for a short time: phrases are locally plausible but long-range
form is weak; use a real AMT checkpoint for more.
"""


def _gain(value: float, trigram: float) -> str:
    return f"{100 * (value - trigram) / trigram:+.1f} %"


def _run_history(training: dict[str, Any]) -> str:
    """The run's notes and its validation curve (every ~500 steps, the best, the last)."""
    notes = training.get("run_notes") or "One uninterrupted run with the config above."
    history = [(int(step), float(nll)) for step, nll in training.get("history", [])]
    if not history:
        return notes
    eval_sequences = training["config"]["run"]["eval_sequences"]
    best = min(history, key=lambda record: record[1])
    keep = {history[0], history[-1], best}
    keep.update(record for record in history if record[0] % 500 == 0)
    rows = [
        f"| {step:,} | {nll:.3f}{' (best)' if (step, nll) == best else ''} |"
        for step, nll in sorted(keep)
    ]
    return "\n".join(
        [
            notes,
            "",
            f"Validation NLL per event during training (first {eval_sequences} validation",
            "sequences; the evaluation below uses all of them):",
            "",
            "| step | nats/event |",
            "|---|---|",
            *rows,
        ]
    )


def _manifest_train_tokens() -> int:
    from engines.amt.data.arrays import DATA_DIR

    manifest = json.loads((DATA_DIR / "manifest.json").read_text())
    return int(manifest["totals"]["train_tokens"])


def render(
    training: dict[str, Any],
    evaluation: dict[str, Any],
    size_bytes: int,
    picture: str | None = None,
) -> str:
    """The card's markdown; ``picture``: a piano-roll PNG of the pieces beside the card."""
    cfg = training["config"]
    model, optim = cfg["model"], cfg["optim"]
    width, vocab, layers = model["n_embd"], model["vocab_size"], model["n_layer"]
    embed = vocab * width + model["n_positions"] * width
    params = embed + layers * (12 * width * width + 13 * width) + 2 * width
    nll = evaluation["validation"]["nll_per_event"]
    generated, pieces = evaluation["generated"], evaluation["validation_pieces"]
    batch_tokens = optim["batch_size"] * optim["grad_accum"] * model["n_positions"]
    train_tokens = training.get("train_tokens") or _manifest_train_tokens()
    hardware = f" Hardware: {training['hardware']}." if training.get("hardware") else ""
    targets = "; ".join(
        f"{label}: {'met' if ok else 'not met'}" for label, ok in evaluation["targets_met"].items()
    )
    return TEMPLATE.format(
        **model,
        params_m=params / 1e6,
        embed_m=vocab * width / 1e6,
        size_mb=size_bytes / 1e6,
        instruments=", ".join(str(i) for i in training.get("train_instruments", [])),
        beta1=optim["beta1"], beta2=optim["beta2"], weight_decay=optim["weight_decay"],
        lr=optim["lr"], warmup_steps=optim["warmup_steps"], batch_tokens=batch_tokens,
        seed=cfg["run"]["seed"],
        step=training["step"], tokens_seen=training["tokens_seen"],
        epochs=training["tokens_seen"] / train_tokens if train_tokens else float("nan"),
        best_step=training["best_step"], hardware=hardware,
        onsets_rule="on" if cfg["loss"].get("onsets_not_in_past") else "off",
        valid_sequences=evaluation["validation"]["sequences"],
        valid_events=evaluation["validation"]["events"],
        nll_model=nll["model"], nll_untrained=nll["untrained"],
        nll_unigram=nll["unigram_add_k"], nll_trigram=nll["trigram_kneser_ney"],
        vs_model=_gain(nll["model"], nll["trigram_kneser_ney"]),
        nll_free=nll["model_past_onsets_allowed"],
        vs_free=_gain(nll["model_past_onsets_allowed"], nll["trigram_kneser_ney"]),
        vs_untrained=_gain(nll["untrained"], nll["trigram_kneser_ney"]),
        vs_unigram=_gain(nll["unigram_add_k"], nll["trigram_kneser_ney"]),
        reference=evaluation["reference_nll"]["nll_per_event"],
        reference_what=evaluation["reference_nll"]["what"],
        reference_events=evaluation["reference_nll"]["events"],
        reference_trigram=(
            f"{evaluation['reference_nll']['trigram_nll_per_event']:.3f}"
            if "trigram_nll_per_event" in evaluation["reference_nll"]
            else "not recorded"
        ),
        pieces=generated["pieces"], seconds=generated["seconds"], top_p=generated["top_p"],
        temperature=generated["temperature"], last_seed=generated["pieces"] - 1,
        valid_pieces=pieces["pieces"],
        in_key_gen=100 * generated["in_key_share"], in_key_val=100 * pieces["in_key_share"],
        tv=generated["pitch_class_tv_distance"],
        nps_gen=generated["notes_per_second"], nps_val=pieces["notes_per_second"],
        poly_gen=generated["polyphony"], poly_val=pieces["polyphony"],
        valid_midi=generated["valid_midi"], targets=targets,
        run_history=_run_history(training),
        picture=f"\n![Piano rolls of the generated pieces]({picture})\n" if picture else "",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.amt.evaluate.card", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--weights", type=Path, default=BUNDLED_DIR, help="weights folder")
    args = parser.parse_args(argv)
    folder: Path = args.weights
    training = json.loads((folder / "training.json").read_text())
    evaluation = json.loads((folder / "evaluation.json").read_text())
    picture = PICTURE if (folder / PICTURE).is_file() else None
    card = render(training, evaluation, (folder / "model.safetensors").stat().st_size, picture)
    (folder / "MODEL_CARD.md").write_text(card)
    print(f"wrote {folder / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
