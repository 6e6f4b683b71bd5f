"""Long-running processes: gateway, processor."""
