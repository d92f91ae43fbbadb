"""``pyro.contrib.autoguide``, the pre-1.0 home of the autoguides: the same classes as
``pyrolite.infer.autoguide``."""

from ...infer.autoguide import *  # noqa: F403
from ...infer.autoguide import __all__  # noqa: F401
