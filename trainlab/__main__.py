"""`python -m trainlab ...` is the `trainlab` command."""

import sys

from .commands.cli import main

sys.exit(main())
