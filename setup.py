"""Packages: ``openpaf`` and its subpackages, and the ``cli/`` folder installed as
``openpaf_cli`` (a top-level ``cli`` would collide with other distributions). The rest of
the metadata is in setup.cfg."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["openpaf", "openpaf.*"]) + ["openpaf_cli"],
      package_dir={"openpaf_cli": "cli"})
