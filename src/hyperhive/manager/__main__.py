"""``python -m hyperhive.manager`` is ``hive-m1nd``."""

import sys

from hyperhive.agent.main import manager_main

sys.exit(manager_main())
