"""``pyro.contrib.easyguide``: hand-written guides from plates, MAP estimates and groups of
model sites."""

from .easyguide import EasyGuide, Group, easy_guide

__all__ = ["EasyGuide", "Group", "easy_guide"]
