"""``python -m resilient``: the ``resilient`` command."""

from __future__ import annotations

import sys

from resilient.cli import main

if __name__ == "__main__":
    sys.exit(main())
