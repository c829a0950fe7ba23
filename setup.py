"""Builds the compiled co-occurrence ranking (everything else is in pyproject.toml).

The extension is optional: without a C compiler shopstream installs anyway and
ranks with the pure-Python reference, which gives the same results, slower.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("models.cooccurrence_rank", ["models/cooccurrence_rank.pyx"], optional=True)],
        compiler_directives={"language_level": "3"},
    )
)
