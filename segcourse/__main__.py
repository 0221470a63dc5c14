import sys

from segcourse.cli import main

sys.exit(main())
