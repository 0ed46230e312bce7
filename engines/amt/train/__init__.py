"""Training the bundled AMT model: ``tutti train`` (see ``cli.add_arguments`` / ``cli.run``).

Needs numpy, torch and transformers only (no music21), so it runs on the lent GPU machines.
"""
