"""What every process shares, importing nothing of ours: settings, structured logs, webhook signing, ./var."""
