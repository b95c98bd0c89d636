"""``python -m local`` is ``calsync``."""

import sys

from local.cli import main

sys.exit(main())
