"""Role processes: one module per role declares what it consumes and what it calls;
``runner.py`` runs them all the same way (clients, signals, waiting, backoff, threads)."""
