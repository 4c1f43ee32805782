"""``python -m hyperhive.agent`` is ``hive-ag3nt``."""

import sys

from hyperhive.agent.main import main

sys.exit(main())
