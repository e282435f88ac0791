"""The Dask task runner of the many-model work (compare children, backtest
folds): the cluster at an address, or a local one started for the flow."""


def dask_runner(address: str | None, workers: int):
    """Prefect's DaskTaskRunner on the scheduler at `address`, else on a
    local cluster of `workers` processes, one thread each (one training per
    process: TensorFlow is not shared across threads)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
