"""``pyro.contrib.autoname``: naming sample sites by scope and by count."""

from . import named
from .autoname_messenger import autoname, sample
from .scoping import name_count, scope

__all__ = ["autoname", "name_count", "named", "sample", "scope"]
