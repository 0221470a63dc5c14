"""``python -m segcourse``: the same as the ``segcourse`` command."""

import sys

from segcourse.cli import main

sys.exit(main())
