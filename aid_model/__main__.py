"""``python -m aid_model <command>``: see ``aid_model.cli``."""

from aid_model.cli import main

raise SystemExit(main())
