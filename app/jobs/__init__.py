"""Background work: named RQ queues, a scheduler for periodic jobs, the worker."""
