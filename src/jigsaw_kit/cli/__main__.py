"""`python -m jigsaw_kit.cli ...` and `torchrun ... -m jigsaw_kit.cli train ...`: the same command as `jigsaw-kit`."""

import sys

from jigsaw_kit.cli import main

sys.exit(main())
