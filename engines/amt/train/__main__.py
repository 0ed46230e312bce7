"""``python -m engines.amt.train --config CONFIG.toml`` (same as ``tutti train``)."""

import sys

from engines.amt.train.cli import main

sys.exit(main())
