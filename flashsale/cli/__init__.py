"""The ``flashsale`` command."""
