"""What the carve tests carve: the issue's canonical case, US, CA, AU and NZ.

A module of its own (not conftest.py): `from conftest import ...` picks whichever conftest
was imported last when several test folders are collected in one run."""

MOVING = ("AU", "CA", "NZ", "US")
