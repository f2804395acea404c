"""flashsale: settings, logging and the ``flashsale`` command, shared by the API, workers and CLI."""
