"""Series that ship inside packages (`statsmodels:NAME`), reshaped where a
dataset needs it to be read like a user's file.
"""

import pandas as pd

from components.common.errors import DataError, invalid_value


def read_statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.datasets as datasets  # optional heavy import, on demand

    module = getattr(datasets, name, None)
    if module is None or not hasattr(module, "load_pandas"):
        available = sorted(
            n for n in dir(datasets) if hasattr(getattr(datasets, n), "load_pandas")
        )
        raise DataError(
            invalid_value(
                "data.path",
                f"a statsmodels dataset, one of {available}",
                f"statsmodels:{name}",
            )
            + f" (statsmodels has no dataset {name!r})"
        )
    frame = module.load_pandas().data
    return _LONG_FORMS[name](frame) if name in _LONG_FORMS else frame


def _fertility_long(wide: pd.DataFrame) -> pd.DataFrame:
    """statsmodels' World Bank fertility rates (one row per country, one column
    per year) as a panel: country, name, year, fertility (births per woman).
    Each country keeps the years from its first to its last reported value;
    the gaps inside stay missing, for `data.missing` to handle."""
    years = [c for c in wide.columns if str(c).isdigit()]
    long = wide.melt(
        id_vars=["Country Code", "Country Name"], value_vars=years,
        var_name="year", value_name="fertility",
    )  # fmt: skip
    long = long.rename(columns={"Country Code": "country", "Country Name": "name"})
    long["year"] = long["year"].astype(int)
    long = long.sort_values(["country", "year"], ignore_index=True)
    seen = long["fertility"].notna().groupby(long["country"])
    inside = seen.cummax() & seen.transform(lambda s: s[::-1].cummax()[::-1])
    return long[inside.to_numpy()].reset_index(drop=True)


# Panels statsmodels ships wide, returned long (one row per series and time).
_LONG_FORMS = {"fertility": _fertility_long}
