"""`python -m ward.cli`: the same as the `wardctl` console script."""

import sys

from ward.cli.main import main

sys.exit(main())
