import sys

from vasopilot.cli import main

sys.exit(main())
