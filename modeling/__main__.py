"""Entry point of ``python -m modeling``."""

import sys

from modeling.cli import main

sys.exit(main())
