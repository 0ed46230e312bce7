"""Training corpus for the bundled AMT model: music21 scores -> uint16 token arrays.

Only ``arrays`` is needed at training time (numpy only); the other modules need music21,
which the GPU machines do not carry.
"""
