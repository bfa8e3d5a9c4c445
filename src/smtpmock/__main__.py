"""``python -m smtpmock serve``: the same as the ``smtpmock`` command."""

import sys

from ._cli import main

if __name__ == "__main__":  # not when a worker process (spawn) imports it
    sys.exit(main())
