"""Residency policies the tests deploy, each a TOML template whose storage the test fills in."""

# One cell, `global`, serving every jurisdiction: stored in the US, backed up in Singapore.
ONE_CELL = """
version = 1
[sites.us]
[sites.sg]
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"
storage = "{storage}"
"""
