"""genaudit: evaluate and audit image generators (the ``audit`` import package holds the measuring core)."""

__version__ = "0.1.0"
