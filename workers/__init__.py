"""RQ jobs that keep PostgreSQL up with the engine: the outbox drain and the reaper."""
