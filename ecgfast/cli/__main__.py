import sys

from ecgfast.cli import main

sys.exit(main())
