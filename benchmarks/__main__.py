"""``python -m benchmarks [args]`` is ``python -m benchmarks.run [args]``."""

import sys

from .run import main

sys.exit(main())
