"""Load tests through the gateway: seeding (``seed``), locust flows (``flows``), thresholds."""
