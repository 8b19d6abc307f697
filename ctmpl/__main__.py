"""Entry point for ``python -m ctmpl``."""

from __future__ import annotations

import sys

from ctmpl.entry import main

if __name__ == "__main__":
    sys.exit(main())
