"""OCPI 2.1.1 object models (msgspec Structs). Import from the per-module files, e.g.
``shared.ocpi.v2_1_1.locations``; serialise with ``shared.ocpi.v2_1_1.codec``."""
