"""Pure domain core: models and rules. Imports no I/O library."""
