"""Click commands of the ``vtdui`` CLI, one module per command group (loaded lazily by :mod:`vtdui.cli`)."""
