"""The verification harness: a workload of buyers, the soak, the race and the audit of what they left."""
