"""Training: slot-restricted loss, a few steps lowering the loss, resumable checkpoints, export."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

from engines.amt import codec, tokenize
from engines.amt import vocab as V
from engines.amt.data.arrays import save_tokens, to_array
from engines.amt.train import cli
from engines.amt.train.checkpoint import BEST, LAST
from engines.amt.train.config import DEFAULT_CONFIG, TrainConfig, from_dict, load_config
from engines.amt.train.dataset import Batches, instruments_in
from engines.amt.train.model import build_model, compute_loss
from engines.amt.train.optim import lr_at
from engines.amt.train.slots import SlotTables, full_loss, slot_ids, slot_loss
from engines.amt.train.trainer import Trainer

MIDI_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "midi"


@pytest.fixture(scope="module")
def sequences() -> npt.NDArray[np.uint16]:
    """Real training sequences (with anticipated controls) from the MIDI fixtures."""
    compounds = [codec.midi_to_compound(p) for p in sorted(MIDI_DIR.glob("*.mid"))]
    result = tokenize.tokenize(compounds, augment_factor=2, rng=np.random.default_rng(0))
    assert len(result.sequences) >= 12
    return to_array(result.sequences)


def tiny_config(run_dir: Path, **optim: float) -> TrainConfig:
    return from_dict(
        {
            "model": {"n_layer": 2, "n_embd": 32, "n_head": 2, "dropout": 0.1},
            "loss": {"corpus_instruments_only": True},
            "optim": {"batch_size": 2, "warmup_steps": 2, "max_steps": 8, "lr": 1e-2, **optim},
            "run": {
                "run_dir": str(run_dir),
                "device": "cpu",
                "eval_every": 1000,
                "eval_sequences": 2,
                "checkpoint_every": 1000,
            },
        }
    )


# -- the loss ----------------------------------------------------------------------------


def test_slot_ids_cover_their_blocks() -> None:
    time, dur, note = (slot_ids(s) for s in range(3))
    assert len(time) == V.MAX_TIME + 1 and time[-1] == V.SEPARATOR
    assert len(dur) == V.MAX_DUR + 1 and dur[0] == V.DUR_OFFSET
    assert len(note) == V.MAX_NOTE + 2 and V.REST in note
    with_controls = slot_ids(2, predict_controls=True)
    assert V.ANOTE_OFFSET in with_controls and len(with_controls) == 2 * V.MAX_NOTE + 2
    violin = slot_ids(2, instruments=[40])
    assert violin == [
        *range(V.NOTE_OFFSET + 40 * 128, V.NOTE_OFFSET + 41 * 128),
        V.REST,
        V.SEPARATOR,
    ]


@pytest.mark.parametrize("predict_controls", [False, True])
@pytest.mark.parametrize("restrict", [False, True])
def test_slot_loss_equals_restricted_full_softmax(
    sequences: npt.NDArray[np.uint16], predict_controls: bool, restrict: bool
) -> None:
    cfg = tiny_config(Path("unused")).model
    cfg.dropout = 0.0
    model = build_model(cfg, seed=3).train(False)
    row = next(i for i, seq in enumerate(sequences) if seq[0] == V.ANTICIPATE)
    ids = torch.from_numpy(sequences[row : row + 1].astype(np.int64))  # holds controls
    instruments = instruments_in(sequences[row : row + 1]) if restrict else None
    tables = SlotTables.build(predict_controls, instruments)
    with torch.no_grad():
        hidden = model.transformer(input_ids=ids).last_hidden_state
        parts = slot_loss(hidden, ids, model.lm_head.weight, tables)
        logits = model(input_ids=ids).logits
    expected_nll, expected_count = torch.zeros(3, dtype=torch.float64), torch.zeros(3)
    for slot in range(3):
        allowed = tables.ids[slot]
        positions = torch.arange(slot, ids.shape[1] - 1, 3)
        targets = ids[:, positions + 1]
        # the reference: full-model logits, softmax taken over the slot's ids only
        restricted = F.log_softmax(logits[:, positions][:, :, allowed].double(), dim=-1)
        inside = torch.isin(targets, allowed)  # e.g. controls drop out when not predicted
        local = torch.searchsorted(allowed, targets).clamp(max=len(allowed) - 1)
        picked = restricted.gather(-1, local.unsqueeze(-1)).squeeze(-1)
        expected_nll[slot] = -picked[inside].sum()
        expected_count[slot] = inside.sum()
    assert parts.count.tolist() == expected_count.tolist()
    assert expected_count.sum() > 0
    torch.testing.assert_close(parts.nll.double(), expected_nll, rtol=1e-5, atol=1e-3)
    if not predict_controls:  # an anticipated sequence holds controls to skip
        assert expected_count.sum() < ids.shape[1] - 1


def test_full_loss_is_plain_cross_entropy(sequences: npt.NDArray[np.uint16]) -> None:
    cfg = tiny_config(Path("unused")).model
    model = build_model(cfg, seed=1).train(False)
    ids = torch.from_numpy(sequences[:1].astype(np.int64))
    with torch.no_grad():
        ours = full_loss(model(input_ids=ids).logits, ids).mean()
        theirs = model(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_slot_loss_is_lower_than_full_softmax_at_init(sequences: npt.NDArray[np.uint16]) -> None:
    # Renormalising over a slot's ids can only raise each target's probability.
    cfg = tiny_config(Path("unused"))
    model = build_model(cfg.model, seed=2).train(False)
    ids = torch.from_numpy(sequences[:1].astype(np.int64))
    tables = SlotTables.build(predict_controls=True)
    with torch.no_grad():
        slot = compute_loss(model, ids, cfg.loss, tables)
        cfg.loss.mode = "full"
        full = compute_loss(model, ids, cfg.loss, tables)
    assert slot.count.sum() == full.count.sum()  # every target is in its slot's set
    assert float(slot.mean()) < float(full.mean())


# -- training ----------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss(sequences: npt.NDArray[np.uint16], tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run")
    cfg.data.max_train_sequences = 4  # a small set the model can start to fit quickly
    cfg.model.dropout = 0.0
    trainer = Trainer(cfg, sequences, sequences[:2])
    probe = torch.from_numpy(sequences[:4].astype(np.int64))

    def loss_now() -> float:
        with torch.no_grad():
            trainer.model.train(False)
            return float(compute_loss(trainer.model, probe, cfg.loss, trainer.tables).mean())

    before = loss_now()
    losses = list(trainer.steps())
    after = loss_now()
    assert len(losses) == 8 and trainer.state.step == 8
    assert after < before - 0.5, (before, after)
    assert losses[-1] < losses[0]


def test_resume_gives_the_same_next_step_loss(
    sequences: npt.NDArray[np.uint16], tmp_path: Path
) -> None:
    straight = Trainer(tiny_config(tmp_path / "a", max_steps=4), sequences, sequences[:2])
    reference = [straight.train_step() for _ in range(4)]

    first = Trainer(tiny_config(tmp_path / "b", max_steps=4), sequences, sequences[:2])
    resumed_losses = [first.train_step() for _ in range(2)]
    first.checkpoint()
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    second = Trainer(tiny_config(tmp_path / "b", max_steps=4), sequences, sequences[:2])
    assert second.resume() and second.state.step == 2
    resumed_losses += [second.train_step() for _ in range(2)]
    assert resumed_losses == reference  # bit-identical: same batches, weights, moments, dropout


def test_max_minutes_stops_with_a_checkpoint(
    sequences: npt.NDArray[np.uint16], tmp_path: Path
) -> None:
    trainer = Trainer(tiny_config(tmp_path / "run"), sequences, sequences[:2])
    trainer.run_dir.mkdir(parents=True)
    steps = list(trainer.steps(max_minutes=1e-6))  # out of time after the first step
    assert len(steps) == 1
    assert (trainer.run_dir / LAST).is_file()


def test_cli_trains_resumes_and_exports_fp16(
    sequences: npt.NDArray[np.uint16], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.npz"
    save_tokens(tokens, sequences[:8], sequences[8:10])
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[model]\nn_layer = 1\nn_embd = 16\nn_head = 2\n"
        f'[data]\ntokens = "{tokens}"\n'
        "[optim]\nbatch_size = 2\nwarmup_steps = 1\nmax_steps = 3\n"
        f'[run]\nrun_dir = "{tmp_path / "run"}"\neval_every = 2\neval_sequences = 2\n'
    )
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "weights"
    args = ["--config", str(config), "--no-progress", "--export", str(out)]
    assert cli.run(parser.parse_args([*args, "--max-minutes", "1e-6"])) == 0
    assert not out.exists()  # stopped after one step: nothing exported yet
    assert (tmp_path / "run" / LAST).is_file()
    assert cli.run(parser.parse_args(args)) == 0  # resumes at step 1, finishes 3, exports
    history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2  # validated at step 2 and at the end (step 3)
    assert (tmp_path / "run" / BEST).is_file()
    model = GPT2LMHeadModel.from_pretrained(out)
    assert model.dtype == torch.float16
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert (out / "model.safetensors").is_file()
    training = json.loads((out / "training.json").read_text())
    assert "train_instruments" in training
    assert [step for step, _ in training["history"]] == [2, 3]
    assert "run_notes" not in training  # no run log written
    (tmp_path / "run" / "runlog.json").write_text('{"note": "lr halved at step 2"}')
    with (tmp_path / "run" / "history.jsonl").open("a") as log:  # a repeated validation
        log.write('{"step": 3.0, "val_loss": 1.0, "val_nll_per_event": 3.5}\n')
    assert cli.run(parser.parse_args([*args, "--export-only"])) == 0
    training = json.loads((out / "training.json").read_text())
    assert training["run_notes"] == "lr halved at step 2"
    assert training["history"][-1] == [3, 3.5] and len(training["history"]) == 2


# -- pieces --------------------------------------------------------------------------------


def test_batches_are_a_function_of_the_step(sequences: npt.NDArray[np.uint16]) -> None:
    batches = Batches(sequences, batch_size=3, seed=7)
    again = Batches(sequences, batch_size=3, seed=7)
    assert torch.equal(batches.batch(5), again.batch(5))
    epoch = torch.cat([batches.batch(i) for i in range(batches.per_epoch)])
    rows = {tuple(r.tolist()[:20]) for r in epoch}
    assert len(rows) == batches.per_epoch * 3  # no sequence twice within an epoch
    assert batches.batch(0).dtype == torch.int64 and batches.batch(0).shape == (3, 1024)


def test_lr_schedule_warms_up_and_decays() -> None:
    opt = TrainConfig().optim
    opt.lr, opt.warmup_steps, opt.min_lr_ratio = 1.0, 10, 0.1
    assert lr_at(0, 100, opt) == pytest.approx(0.1)
    assert lr_at(9, 100, opt) == pytest.approx(1.0)
    assert lr_at(100, 100, opt) == pytest.approx(0.1)
    assert lr_at(55, 100, opt) == pytest.approx(0.55)
    assert lr_at(30, 100, opt) > lr_at(70, 100, opt)


def test_default_config_is_the_shipped_shape() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (4, 256, 4)
    assert cfg.model.vocab_size == V.VOCAB_SIZE and cfg.model.n_positions == 1024
    assert cfg.loss.mode == "slot"
    with pytest.raises(ValueError, match="unknown key"):
        from_dict({"optim": {"learning_rate": 1.0}})


def test_training_stops_when_validation_stops_improving(
    sequences: npt.NDArray[np.uint16], tmp_path: Path
) -> None:
    cfg = tiny_config(tmp_path / "run", lr=0.0)  # frozen weights: validation never improves
    cfg.run.eval_every, cfg.run.patience = 1, 2
    trainer = Trainer(cfg, sequences, sequences[:2])
    trainer.run_dir.mkdir(parents=True)
    steps = list(trainer.steps())
    assert len(steps) == 3  # step 1 sets the best, steps 2 and 3 do not improve on it
    assert trainer.state.stopped_early and trainer.finished
    assert trainer.state.best_step == 1 and (trainer.run_dir / BEST).is_file()


def test_sinusoidal_time_init_makes_a_time_shift_one_linear_map() -> None:
    cfg = from_dict({"model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "time_init": "sinusoidal"}})
    model = build_model(cfg.model, seed=0)
    weight = model.transformer.wte.weight.detach().double()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied
    times = weight[V.TIME_OFFSET : V.TIME_OFFSET + V.MAX_TIME]
    assert torch.equal(times, weight[V.ATIME_OFFSET : V.ATIME_OFFSET + V.MAX_TIME])
    durations = weight[V.DUR_OFFSET : V.DUR_OFFSET + V.MAX_DUR]
    assert torch.equal(durations, times[: V.MAX_DUR])
    # One least-squares map fitted on 70 % of the times moves every other time t to t + 25
    # ticks: the shift is linear in these embeddings (with random rows it is not).
    order = torch.randperm(V.MAX_TIME - 25, generator=torch.Generator().manual_seed(0))
    fit, held = order[:7000], order[7000:]

    def shift_error(rows: torch.Tensor) -> float:
        shift = torch.linalg.lstsq(rows[fit], rows[fit + 25]).solution
        return float((rows[held] @ shift - rows[held + 25]).abs().max())

    assert shift_error(times) < 1e-4
    assert shift_error(torch.randn_like(times) * 0.02) > 1e-2
    rms = float(times.pow(2).mean().sqrt())
    assert rms == pytest.approx(model.config.initializer_range, rel=1e-3)
    plain = build_model(from_dict({"model": {"n_layer": 1, "n_embd": 32, "n_head": 2}}).model, 0)
    assert not torch.equal(plain.transformer.wte.weight[:10], model.transformer.wte.weight[:10])


def test_a_run_continues_on_another_machine_from_exported_weights(
    sequences: npt.NDArray[np.uint16], tmp_path: Path
) -> None:
    first = Trainer(tiny_config(tmp_path / "a", max_steps=6), sequences[:10], sequences[10:12])
    first.fit(progress=False)
    first._validate()  # best.pt at step 6
    from engines.amt.train.checkpoint import export_best

    out = export_best(first.run_dir, first.cfg.model, tmp_path / "weights", first.card_info())
    second = Trainer(tiny_config(tmp_path / "b", max_steps=9), sequences[:10], sequences[10:12])
    second.init_from(out)
    assert second.state.step == 6 and second.state.tokens_seen == first.state.tokens_seen
    exported = cast(Any, GPT2LMHeadModel.from_pretrained(out)).float()
    for name, value in exported.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], value), name
    assert second.model.lm_head.weight.data_ptr() == second.model.transformer.wte.weight.data_ptr()
    second.fit(progress=False)
    assert second.state.step == 9
    wrong = Trainer(
        from_dict({"model": {"n_layer": 1, "n_embd": 16, "n_head": 2}}), sequences[:10], sequences[10:12]
    )
    with pytest.raises(ValueError, match="does not match the configured model"):
        wrong.init_from(out)


def test_onset_floor_is_the_previous_event_onset_restarting_after_separators() -> None:
    from engines.amt.train.slots import onset_floor

    def t(x: int) -> int:
        return V.TIME_OFFSET + x

    seq = [
        V.AUTOREGRESS,
        t(10), V.DUR_OFFSET + 5, V.NOTE_OFFSET + 60,
        V.ATIME_OFFSET + 30, V.ADUR_OFFSET + 5, V.ANOTE_OFFSET + 60,  # a control: no effect
        t(20), V.DUR_OFFSET + 5, V.NOTE_OFFSET + 61,
        V.SEPARATOR, V.SEPARATOR, V.SEPARATOR,
        t(3), V.DUR_OFFSET + 1, V.NOTE_OFFSET + 2,
        t(7), V.DUR_OFFSET + 1, V.NOTE_OFFSET + 2,
    ]
    assert onset_floor(torch.tensor([seq])).tolist() == [[0, 10, 10, 0, 0, 3]]


def test_time_loss_over_onsets_not_in_past_is_the_sampler_renormalised_distribution(
    sequences: npt.NDArray[np.uint16],
) -> None:
    from engines.amt.train.slots import onset_floor

    cfg = from_dict({"model": {"n_layer": 1, "n_embd": 32, "n_head": 2}})
    model = cast(Any, build_model(cfg.model, seed=0)).eval()
    batch = torch.from_numpy(sequences[:2].astype(np.int64))
    tables = SlotTables.build()
    with torch.no_grad():
        hidden = model.transformer(input_ids=batch).last_hidden_state
        plain = slot_loss(hidden, batch, model.lm_head.weight, tables)
        masked = slot_loss(hidden, batch, model.lm_head.weight, tables, onsets_not_in_past=True)
        # by hand: time-slot log-softmax over [floor, MAX_TIME) plus the separator
        h = hidden[:, 0:-1:3]
        targets = batch[:, 1::3][:, : h.shape[1]]
        floors = onset_floor(batch)[:, : h.shape[1]]
        expected = 0.0
        for b in range(2):
            for i in range(h.shape[1]):
                target = int(targets[b, i])
                if target >= V.MAX_TIME and target != V.SEPARATOR:
                    continue  # a control's time: not a target
                allowed = [*range(int(floors[b, i]), V.MAX_TIME), V.SEPARATOR]
                logits = h[b, i] @ model.lm_head.weight[allowed].T
                expected -= float(torch.log_softmax(logits, -1)[allowed.index(target)])
    assert float(masked.nll[0]) == pytest.approx(expected, rel=1e-4)
    assert float(masked.nll[0]) < float(plain.nll[0])  # same targets, smaller support
    assert torch.equal(masked.nll[1:], plain.nll[1:]) and torch.equal(masked.count, plain.count)
