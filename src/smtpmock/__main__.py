"""``python -m smtpmock serve``: the same as the ``smtpmock`` command."""

import sys

from ._cli import main

sys.exit(main())
