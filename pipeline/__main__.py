"""``python -m pipeline`` is the ``sweep`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
