"""`python -m assets2vec ...`: the CLI without its console script (a machine that has the code on
PYTHONPATH but did not pip-install it, such as a lent GPU machine)."""

import sys

from assets2vec.cli.main import main

sys.exit(main())
