"""What `rnnflow` prints while a flow runs. By default: the lines about the
user's data, split and model, training as one line that updates (on a
terminal; plain lines every `train.verbose_every` epochs otherwise),
warnings and errors, and the summary. Prefect's engine notices (task
finished, flow run began, temporary server started and stopped) and MLflow's
info lines are left out; `--verbose` (or RNNFLOW_VERBOSE=1) shows them all,
in Prefect's own format.
"""

import logging
import os
import re
import sys
import time
from collections.abc import Callable

# An epoch hook (components.training.callbacks.EpochHook), named here so that
# importing this module imports no TensorFlow.
EpochHook = Callable[[int, dict[str, float]], None]

VERBOSE = "RNNFLOW_VERBOSE"
# Set on a terminal: `flows.train` shows training as one updating line.
LIVE_PROGRESS = "RNNFLOW_LIVE_PROGRESS"
# Prefect's per-run notices that say nothing about the user's data or model
_ENGINE_NOTICE = re.compile(
    r"^(Finished in state Completed|Beginning (flow|subflow) run|View at |"
    r"Created (task|flow) run|Executing )"
)


class _Quiet(logging.Filter):
    """Keep warnings and errors, and the flows' own info lines, each info line
    once: the children of a compare build the same model the same way, and
    "built gru + shared linear skip ..." twelve times says nothing new."""

    def __init__(self):
        super().__init__()
        self._shown: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if _about_a_user_error(record):
            return False
        if record.levelno >= logging.WARNING:
            return True
        if record.name.startswith("prefect") and not record.name.startswith(
            ("prefect.flow_runs", "prefect.task_runs")
        ):
            return False  # server start/stop, etc.
        message = record.getMessage()
        if _ENGINE_NOTICE.match(message) or message in self._shown:
            return False
        self._shown.add(message)
        return True


# How Prefect reports a failed task or flow run; the CLI prints the error once.
_FAILED_RUN = re.compile(
    r"^(Task run failed with exception: |Encountered exception during execution: |"
    r"Finished in state Failed\()"
)


def _about_a_user_error(record: logging.LogRecord) -> bool:
    """Whether `record` is Prefect restating a user error (bad data, bad
    config) that `rnnflow` prints itself as its last line, `error: ...`:
    one failure, one line."""
    from components.common.errors import RnnflowError

    if record.exc_info and isinstance(record.exc_info[1], RnnflowError):
        return True
    message = record.getMessage()
    if not _FAILED_RUN.match(message):
        return False
    names, todo = set(), [RnnflowError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return any(f"{name}(" in message or f"{name}: " in message for name in names)


class _Plain(logging.Formatter):
    """The message alone; a warning or an error says which it is."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def quiet(handler: logging.Handler) -> logging.Handler:
    """`handler` showing what the terminal shows by default (the filter and
    plain format `prepare` puts on Prefect's handlers): for the lines
    `rnnflow server` relays to its clients."""
    handler.addFilter(_Quiet())
    handler.setFormatter(_Plain())
    return handler


def prepare(verbose: bool, on_terminal: bool) -> None:
    """Set up the terminal for the flow runs of this command. A process that
    runs several commands (`rnnflow server`) may switch back and forth."""
    import mlflow  # noqa: F401  (configures its loggers on import: set them after)
    from prefect.logging.configuration import setup_logging

    setup_logging()  # Prefect's handlers now, so the filter sits on them
    for handler in logging.getLogger().handlers:
        quiet = [f for f in handler.filters if isinstance(f, _Quiet)]
        if verbose and quiet:
            handler.removeFilter(quiet[0])
            handler.setFormatter(handler.rnnflow_formatter)
        elif not verbose and not quiet:
            handler.rnnflow_formatter = handler.formatter
            handler.addFilter(_Quiet())
            handler.setFormatter(_Plain())
    logging.getLogger("mlflow").setLevel(logging.INFO if verbose else logging.WARNING)
    if on_terminal and not verbose:
        os.environ[LIVE_PROGRESS] = "1"
    else:
        os.environ.pop(LIVE_PROGRESS, None)


def progress_printer(emit: Callable[[str], None], every: int, epochs: int) -> EpochHook:
    """A hook that emits one line every `every` epochs (and at the first)."""

    def hook(epoch: int, logs: dict[str, float]) -> None:
        if every and (epoch == 1 or epoch % every == 0 or epoch == epochs):
            values = "  ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()))
            emit(f"epoch {epoch}/{epochs}  {values}")

    return hook


class LiveProgress:
    """An epoch hook that keeps one terminal line up to date: the epoch, the
    losses and the time left if training runs every epoch (early stopping
    may end it sooner), timed from the second epoch on (the first also
    traces the graph). `close()` erases the line."""

    def __init__(
        self, stream, epochs: int, clock: Callable[[], float] = time.monotonic
    ):
        self._stream, self._epochs, self._clock = stream, epochs, clock
        self._first: tuple[int, float] | None = None  # first epoch here, its end

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        now = self._clock()
        if self._first is None:
            self._first = (epoch, now)
        first, since = self._first
        left = ""
        if epoch > first:
            per_epoch = (now - since) / (epoch - first)
            left = f"  at most {per_epoch * (self._epochs - epoch):.0f} s left"
        values = "  ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()))
        width = len(str(self._epochs))
        self._stream.write(
            f"\r\x1b[2Kepoch {epoch:>{width}}/{self._epochs}  {values}{left}"
        )
        self._stream.flush()

    def close(self) -> None:
        """Erase the line: the summary that follows says how training ended
        (epochs, seconds), and a stale "at most 2 s left" would only confuse."""
        if self._first is not None:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()


# TensorFlow's C++ start-up notices: printed while it imports, before
# TF_CPP_MIN_LOG_LEVEL applies (absl is not initialized yet).
_TF_NOTICE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cudart_stub|Could not find cuda "
    r"drivers|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning"
)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its C++ start-up notices on the terminal.

    They go straight to file descriptor 2, so stderr is pointed at a
    temporary file for the import; every other line it wrote (a real
    warning, the reason an import failed) is written back afterwards."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if not _TF_NOTICE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


class _DropUserErrorTraceback(logging.Filter):
    """User errors already carry a clear message; their traceback is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        from components.common.errors import RnnflowError

        if record.exc_info and isinstance(record.exc_info[1], RnnflowError):
            record.exc_info = None
            record.exc_text = None
        return True


def hide_user_error_tracebacks() -> None:
    """Prefect logs a failed task's exception with its traceback; for a user
    error (bad data, bad config) the message says it all."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropUserErrorTraceback) for f in logger.filters):
            logger.addFilter(_DropUserErrorTraceback())
