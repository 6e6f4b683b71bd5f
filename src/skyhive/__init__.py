"""SkyHive: real-time operations platform for a drone delivery fleet."""

__version__ = "0.1.0"
