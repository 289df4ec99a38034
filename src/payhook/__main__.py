"""``python -m payhook`` is the ``payhook`` command."""

import sys

from payhook.cli.main import main

sys.exit(main())
