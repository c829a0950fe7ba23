"""Builds the compiled co-occurrence ranking and learning, the session-neighbour votes
and demand's learning of a day (everything else is in pyproject.toml).

The extensions are optional: without a C compiler shopstream installs anyway
and learns and ranks with the pure-Python reference, which gives the same
results, slower.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension(f"models.{name}", [f"models/{name}.pyx"], optional=True)
         for name in ("cooccurrence_rank", "cooccurrence_learn", "session_votes", "demand_days")],
        compiler_directives={"language_level": "3"},
    )
)
