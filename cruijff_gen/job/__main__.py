import sys

from .preflight import main

sys.exit(main())
