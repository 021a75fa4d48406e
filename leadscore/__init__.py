"""The `leadscore` command line: thin commands over the functions of the packages.

This is the one place that wires `features`, `training` and `serving` together; the
packages themselves keep their dependencies pointing one way.
"""
