"""Constants of the Anticipatory Music Transformer token format.

Values mirror ``tests/fixtures/amt/vocab.json`` (the reference implementation's
``config.py`` / ``vocab.py``); ``tests/engines/amt/test_amt_vocab.py`` checks every one of
them against that file, so a typo here fails loudly instead of shifting a token block.
"""

from __future__ import annotations

from typing import Final

# --- time base -------------------------------------------------------------------------
TIME_RESOLUTION: Final = 100  # ticks per second (10 ms ticks)
CONTEXT_SIZE: Final = 1024  # model context in tokens
EVENT_SIZE: Final = 3  # one event = (time, duration, note)
M: Final = 341  # events per context: 1 flag token + 341 triples
DELTA: Final = 5  # anticipation interval in seconds
MAX_TIME_IN_SECONDS: Final = 100
MAX_DURATION_IN_SECONDS: Final = 10
MAX_INTERARRIVAL_IN_SECONDS: Final = 10
MAX_TIME: Final = TIME_RESOLUTION * MAX_TIME_IN_SECONDS  # 10000 time ids
MAX_DUR: Final = TIME_RESOLUTION * MAX_DURATION_IN_SECONDS  # 1000 duration ids
MAX_INTERARRIVAL: Final = TIME_RESOLUTION * MAX_INTERARRIVAL_IN_SECONDS
DELTA_TICKS: Final = DELTA * TIME_RESOLUTION  # 500 ticks

# --- notes -----------------------------------------------------------------------------
MAX_PITCH: Final = 128
MAX_INSTR: Final = 129  # 0..127 General MIDI programs, 128 = drums
DRUMS: Final = 128
DRUM_CHANNEL: Final = 9  # zero-based MIDI channel that always means drums
MAX_NOTE: Final = MAX_PITCH * MAX_INSTR  # 16512
COMPOUND_SIZE: Final = 5  # (time, duration, pitch, instrument, velocity)
DEFAULT_VELOCITY: Final = 72  # the reference writer's one velocity
UNKNOWN_DURATION_TICKS: Final = TIME_RESOLUTION // 4  # note without note-off: 250 ms

# --- training filters ------------------------------------------------------------------
MAX_TRACK_INSTR: Final = 16
MAX_TRACK_TIME_IN_SECONDS: Final = 3600
MIN_TRACK_TIME_IN_SECONDS: Final = 10
MIN_TRACK_EVENTS: Final = 100
ANTICIPATION_RATES: Final = 10

# --- arrival-time vocabulary -----------------------------------------------------------
EVENT_OFFSET: Final = 0
TIME_OFFSET: Final = EVENT_OFFSET
DUR_OFFSET: Final = TIME_OFFSET + MAX_TIME  # 10000
NOTE_OFFSET: Final = DUR_OFFSET + MAX_DUR  # 11000
REST: Final = NOTE_OFFSET + MAX_NOTE  # 27512
CONTROL_OFFSET: Final = REST + 1  # 27513
ATIME_OFFSET: Final = CONTROL_OFFSET + TIME_OFFSET
ADUR_OFFSET: Final = CONTROL_OFFSET + DUR_OFFSET  # 37513
ANOTE_OFFSET: Final = CONTROL_OFFSET + NOTE_OFFSET  # 38513
SPECIAL_OFFSET: Final = ANOTE_OFFSET + MAX_NOTE  # 55025
SEPARATOR: Final = SPECIAL_OFFSET
AUTOREGRESS: Final = SPECIAL_OFFSET + 1
ANTICIPATE: Final = SPECIAL_OFFSET + 2
VOCAB_SIZE: Final = ANTICIPATE + 1  # 55028

# --- interarrival ("MIDI-like") vocabulary ----------------------------------------------
MIDI_TIME_OFFSET: Final = 0
MIDI_START_OFFSET: Final = MIDI_TIME_OFFSET + MAX_INTERARRIVAL  # note-on block
MIDI_END_OFFSET: Final = MIDI_START_OFFSET + MAX_NOTE  # note-off block
MIDI_SEPARATOR: Final = MIDI_END_OFFSET + MAX_NOTE
MIDI_VOCAB_SIZE: Final = MIDI_SEPARATOR + 1

# --- writer ------------------------------------------------------------------------------
# 50 ticks per beat at the default 120 bpm makes one MIDI tick exactly one 10 ms token tick.
TICKS_PER_BEAT: Final = TIME_RESOLUTION // 2
