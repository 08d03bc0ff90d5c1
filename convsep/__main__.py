import sys

from convsep.cli import main

sys.exit(main())
