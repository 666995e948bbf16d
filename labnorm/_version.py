"""labnorm's version, in a module of its own so that tools (`labnorm.results`) can read it without
importing every technique through `labnorm/__init__.py`."""

__version__ = "0.1.0"
