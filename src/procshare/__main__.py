"""``python -m procshare``: the same as the ``procshare`` command."""

import sys

from ._cli import main

sys.exit(main())
