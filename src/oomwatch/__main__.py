"""`python -m oomwatch`."""

import sys

from oomwatch.cli import main

sys.exit(main())
