"""ASGI entry point for `carveout serve`: the app over the deployment in $CARVEOUT_DATA."""

from __future__ import annotations

from carveout.api.app import create_app
from carveout.cells import Deployment
from carveout.core.settings import data_dir

# The served app finishes interrupted erasures at start-up and enforces retention hourly.
app = create_app(Deployment.open(data_dir()), housekeeping=True)
