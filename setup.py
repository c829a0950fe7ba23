"""Builds the compiled co-occurrence ranking and learning, the session-neighbour votes,
demand's learning of a day and counting of purchases (everything else is in pyproject.toml).

The extensions are optional: without a C compiler shopstream installs anyway
and learns and ranks with the pure-Python reference, which gives the same
results, slower.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension(name, [name.replace(".", "/") + ".pyx"], optional=True)
         for name in ("models.cooccurrence_rank", "models.cooccurrence_learn", "models.session_votes",
                      "models.demand_days", "stream.demand_sales")],
        compiler_directives={"language_level": "3"},
    )
)
