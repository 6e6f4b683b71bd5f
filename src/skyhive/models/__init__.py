"""Stream models shipped with SkyHive, plug-ins of the ``skyhive.models`` entry point group
(``domain/stream_models.py``): battery health and anomalies."""
