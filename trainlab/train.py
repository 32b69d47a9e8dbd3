"""`torchrun -m trainlab.train CONFIG [overrides]`: one training process (see trainlab.commands.train)."""

import sys

from .commands.train import main

if __name__ == "__main__":
    sys.exit(main())
