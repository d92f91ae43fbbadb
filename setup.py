import re

from setuptools import setup

with open("pyrolite/__init__.py") as f:
    version = re.search(r'^__version__ = "(.*)"', f.read(), re.M).group(1)

setup(version=version)
