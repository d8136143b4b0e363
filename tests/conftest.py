"""Test configuration shared by the whole suite: hypothesis profiles.

Profiles: ``ci`` (derandomized, the default under ``CI=true`` or ``HYPOTHESIS_PROFILE=ci``) and
``dev`` (random, the default elsewhere). Neither has a deadline: SVD timings vary on shared CPUs.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))
