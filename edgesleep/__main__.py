import sys

from edgesleep.cli import main

sys.exit(main())
