"""``python -m instax_async``: the ``instax`` command line."""

import sys

from .cli import main

sys.exit(main())
