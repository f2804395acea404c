"""``python -m flashsale``: the ``flashsale`` command, for children that must not depend on PATH."""

from flashsale.cli.main import main

main()
