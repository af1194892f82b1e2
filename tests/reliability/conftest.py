"""Fixtures of the reliability tests: the same as the axelera.runtime tests', taken from
tests/python/conftest.py so the two suites cannot drift apart."""
import importlib.util
import pathlib

_source = pathlib.Path(__file__).resolve().parent.parent / "python" / "conftest.py"
_spec = importlib.util.spec_from_file_location("axstream_python_test_fixtures", _source)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
# pytest finds fixtures (and hooks) among this module's attributes.
globals().update({name: value for name, value in vars(_fixtures).items()
                  if not name.startswith("__")})
