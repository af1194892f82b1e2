"""Axelera AI packages (axstream). ``axelera`` is shared with other Axelera distributions."""

# Let other installed distributions contribute sub-packages to ``axelera``.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
