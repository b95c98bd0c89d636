"""HTTP APIs (Powertools event handler routers): the transport shapes of the use cases, and nothing else."""
