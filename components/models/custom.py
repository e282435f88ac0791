"""Importing this registers every custom layer and loss rnnflow's models use,
so a saved `.keras` file loads with `safe_mode=True` in any process."""

import components.models.ensemble  # noqa: F401
import components.models.layers  # noqa: F401
import components.models.quantiles  # noqa: F401
import components.models.series_id  # noqa: F401
import components.models.skip  # noqa: F401
import components.models.window_norm  # noqa: F401
