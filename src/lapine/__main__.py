import sys

from lapine.cli.server import main

sys.exit(main())
