"""``python -m stream.cli``: the ``stylize`` command."""

import sys

from stream.cli import main

sys.exit(main())
