"""Map the top-level templates/ and migrations/ into the wheel as qaportal.templates/.migrations.

Everything else is in pyproject.toml; setuptools needs code for a package list that is
both discovered and mapped.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["qaportal", "qaportal.*"])
    + ["qaportal.templates", "qaportal.migrations"],
    package_dir={"qaportal.templates": "templates", "qaportal.migrations": "migrations"},
    package_data={
        "qaportal": ["static/**/*", "data/*.txt"],
        "qaportal.templates": ["**/*.html", "**/*.css", "**/*.svg"],
        "qaportal.migrations": ["alembic.ini", "script.py.mako", "README", "*.py",
                               "versions/*.py"],
    },
    include_package_data=False,
)
