"""The local stack ``flashsale up`` runs: the supervisor of its processes, a private Redis, the demo sale."""
