"""The `carveout` command line (Typer)."""
