"""ViaTrajectoire simulator (SI-SdO side) for development, tests and demos."""
