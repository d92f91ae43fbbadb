"""Older module paths kept so existing Pyro code runs (``pyro.contrib.autoguide``)."""
