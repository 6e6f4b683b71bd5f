"""Ports: what the services need from the world, one Protocol per module.

Services import ports and the domain only; adapters implement the ports (Redis, MongoDB,
MQTT, the system clock) and the composition root (`wiring.py`) hands the implementations in.
"""
