"""``python -m benchmarks``: runs every benchmark; ``--quick`` only proves the scripts work."""

import sys

print("benchmarks: none yet", file=sys.stderr)
