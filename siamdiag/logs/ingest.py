"""Read loss logs into runs: find the inputs, decode them, pick a reader, split into runs.

An input is a file, stdin, a directory of TensorBoard event files (one run) or an MLflow run
directory (one run). Every failure becomes an InputError naming file, line and column.
"""
from __future__ import annotations

import errno
import functools
import glob
import os
import pathlib
import re
import urllib.parse
from dataclasses import dataclass, replace

from .columns import ColumnOverrides, detect_columns
from ..errors import InputError, SiamdiagError, UsageError
from . import INPUT_FORMAT_ALIASES, INPUT_FORMATS, textfile
from .readers import TEXT_READERS, detect_format, format_from_name, is_event_file
from .readers.dialect import DELIMITERS
from .readers.plain_csv import read_plain_numbers
from .readers.dvclive import is_dvclive_dir, read_dvclive
from .readers.mlflow import find_run_dirs, holds_runs, is_run_dir, read_file_store
from .readers.mlflow_db import RunFilter, TrackedRun, is_mlflow_db, read_mlflow_db, unique_names
from .readers.wandb_run import EXTRA as WANDB_EXTRA, read_wandb_run, run_key, run_log, wandb_installed
from .tables import RawRun, Tracker, metric_roles, numbers_to_run, series_to_run, table_to_runs

# Files a directory walk picks up; anything else is read when named explicitly.
WALKED_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".jsonl", ".ndjson", ".jsonl.gz")
WALKED_NAMES = ("trainer_state.json",)
# Files a directory walk opens to see whether they are MLflow database stores.
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True)
class LogInput:
    """One thing to read: a file ('-' is stdin), or a store read as a whole by ``format``
    ('tensorboard': the event ``files`` in a directory; 'mlflow': a file store's directory or
    an MLflow SQLite database file)."""

    path: str
    format: str | None = None
    files: tuple[str, ...] = ()
    run_name: str | None = None    # the run's name when not its path (a Hugging Face output directory)
    notes: tuple[str, ...] = ()    # said of its runs (which of several files was read)
    children: tuple[tuple[str, tuple[str, ...]], ...] = ()   # a TensorBoard writer's subdirectories: (path, files)


@dataclass(frozen=True)
class ReadOptions:
    """How to read: column or tag names, the format when detection is not wanted, a regular
    expression for plain-text logs, and which MLflow runs (and tracking URI) to read."""

    overrides: ColumnOverrides = ColumnOverrides()
    input_format: str = "auto"  # a name from siamdiag.logs.INPUT_FORMATS or an alias of one
    pattern: re.Pattern | None = None
    mlflow_runs: RunFilter = RunFilter()   # which MLflow runs to read (experiment, run-name glob)
    tracking_uri: str | None = None        # also read the runs of this MLflow tracking URI
    tracking_timeout: float = 30.0         # seconds to wait for a tracking server (retries included)

    def __post_init__(self):
        """Resolve an alias ('keras', 'tb', ...) to the format that reads it; refuse unknown names."""
        resolved = INPUT_FORMAT_ALIASES.get(self.input_format, self.input_format)
        if resolved not in INPUT_FORMATS:
            allowed = ", ".join(INPUT_FORMATS + tuple(INPUT_FORMAT_ALIASES))
            raise UsageError(f"unknown input format {self.input_format!r}; one of: {allowed}")
        object.__setattr__(self, "input_format", resolved)


def _walk(directory: str, input_format: str) -> tuple[list[LogInput], list[str]]:
    """Logs under a directory, sorted: MLflow runs, directories of event files, log files; and
    notes on the directories of event files passed over."""
    found: list[LogInput] = []
    wandb_runs: dict[tuple[str, str], list[tuple[str, str, str]]] = {}

    def refuse(exc: OSError) -> None:
        raise InputError(exc.filename or directory, f"cannot list directory: {exc.strerror}")

    for root, subdirs, files in os.walk(directory, onerror=refuse):
        subdirs.sort()
        if input_format in ("auto", "wandb") and run_log(root):
            folder, run_id, started = run_key(root)   # its files/ (synced TensorBoard files too) are not runs
            wandb_runs.setdefault((folder, run_id), []).append((started, root, run_log(root)))
            subdirs[:] = []
            continue
        if input_format in ("auto", "mlflow") and (is_run_dir(root) or holds_runs(root)):
            found.append(LogInput(root, "mlflow"))   # a store is read whole: its runs are named together
            subdirs[:] = []
            continue
        if input_format in ("auto", "dvclive") and is_dvclive_dir(root):
            found.append(LogInput(root, "dvclive"))   # its metric TSVs are one run, not a run each
            subdirs[:] = [d for d in subdirs if d != "plots"]
        events = sorted(os.path.join(root, f) for f in files if is_event_file(f))
        if events and input_format in ("auto", "tensorboard"):
            found.append(LogInput(root, "tensorboard", tuple(events)))
        for f in sorted(files):
            lower = f.lower()
            if input_format in ("auto", "mlflow") and lower.endswith(DATABASE_SUFFIXES):
                if is_mlflow_db(os.path.join(root, f)):
                    found.append(LogInput(os.path.join(root, f), "mlflow"))
            elif lower.endswith(WALKED_SUFFIXES) or lower in WALKED_NAMES or (
                    input_format not in ("auto", "tensorboard", "mlflow") and format_from_name(f) == input_format):
                found.append(LogInput(os.path.join(root, f)))
    found, skipped = writer_directories(found)
    found, wandb_skipped = wandb_run_inputs(found, wandb_runs)
    return newest_checkpoints_only(own_log_first(found)), skipped + wandb_skipped


def wandb_run_inputs(found: list[LogInput], runs: dict) -> tuple[list[LogInput], list[str]]:
    """One input per W&B run: its directories (several when it was resumed, or written back to)
    read together in start order, named after the first. Without the wandb package they are
    passed over, with a note naming the extra."""
    if runs and not wandb_installed():
        return found, [f"skipped {directories[0][1]}: {WANDB_EXTRA}" for directories in runs.values()]
    for directories in runs.values():
        directories.sort()
        found.append(LogInput(directories[0][1], "wandb-run", tuple(log for _started, _root, log in directories)))
    return found, []


OWN_LOG = "siamdiag_metrics.csv"   # what the Hugging Face and Lightning callbacks write by default


def own_log_first(found: list[LogInput]) -> list[LogInput]:
    """One directory written by one training is one run. Beside the callbacks' own per-step log
    (``siamdiag_metrics.csv``), the training library's logs of the same training (the Trainer's
    ``trainer_state.json``, there and in its ``checkpoint-<step>/``, and the event files of its
    ``report_to="tensorboard"`` in ``runs/<stamp>/``; Lightning's CSVLogger ``metrics.csv`` and
    TensorBoardLogger event files in the same version directory) are not read again: the
    callback's file is, and its run names the others."""
    own = {os.path.dirname(log.path) for log in found if os.path.basename(log.path) == OWN_LOG}
    if not own:
        return found
    others: dict[str, list[str]] = {}
    kept = []
    for log in found:
        directory = _written_beside(log, own)
        if directory is None:
            kept.append(log)
        else:
            others.setdefault(directory, []).append(_named_from(log, directory))
    return [replace(log, notes=log.notes + (
                f"read {OWN_LOG}, the callback's log of every step; the same training's "
                f"{', '.join(others[os.path.dirname(log.path)])} in {os.path.dirname(log.path)} not read again",))
            if os.path.basename(log.path) == OWN_LOG and os.path.dirname(log.path) in others else log for log in kept]


def _written_beside(log: LogInput, own: set[str]) -> str | None:
    """The directory of a callback's own log that ``log`` was written beside by the same
    training, if it was (see ``own_log_first``)."""
    directory, name = os.path.split(log.path)
    if log.format == "tensorboard":   # Lightning's version directory, or the Trainer's runs/<stamp>
        written_by = os.path.dirname(directory) if os.path.basename(directory) == "runs" else log.path
        return written_by if written_by in own else None
    if name == "trainer_state.json" and CHECKPOINT_DIR.fullmatch(os.path.basename(directory)):
        directory = os.path.dirname(directory)
    return directory if name in ("trainer_state.json", "metrics.csv") and directory in own else None


def _named_from(log: LogInput, directory: str) -> str:
    """How a log not read again is named in the note of the callback's run in ``directory``."""
    if log.format != "tensorboard":
        return os.path.relpath(log.path, directory)
    return "TensorBoard event files" if log.path == directory else \
        f"{os.path.relpath(log.path, directory)} (TensorBoard event files)"


def writer_directories(found: list[LogInput]) -> tuple[list[LogInput], list[str]]:
    """A TensorBoard writer's subdirectories of event files (add_scalars' series, add_hparams'
    folder) are read with it, as its ``children``, not as runs of their own; a writer whose files
    hold no scalar (it logged nothing, or only histograms, images or a graph) is passed over,
    with a note."""
    tensorboard = {log.path: log for log in found if log.format == "tensorboard"}
    if not tensorboard:
        return found, []
    from .readers.tensorboard import holds_scalars   # loaded with the first event files: a CSV run never needs it

    is_child = {}
    for path in tensorboard:   # parents come first: the walk is top-down
        parent = os.path.dirname(path)
        is_child[path] = parent in tensorboard and not is_child[parent]
    kept, skipped = [], []
    for log in found:
        if log.format != "tensorboard":
            kept.append(log)
        elif not is_child[log.path]:
            children = tuple((p, tensorboard[p].files) for p in tensorboard
                             if is_child[p] and os.path.dirname(p) == log.path)
            files = log.files + tuple(f for _p, child_files in children for f in child_files)
            if not any(holds_scalars(f) for f in files):
                skipped.append(f"skipped {log.path}: its TensorBoard event files hold no scalars (a writer that "
                               "logged nothing, or only histograms, images or a graph)")
            else:
                kept.append(replace(log, children=children))
    return kept, skipped


CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")


def newest_checkpoints_only(found: list[LogInput]) -> list[LogInput]:
    """A Hugging Face output directory holds one ``trainer_state.json`` per ``checkpoint-<step>``
    directory, each the same run up to that step (and one beside them once training ends): one
    run, named after the output directory, read from the last state written, saying so."""
    states: dict[str, list[tuple[int, str]]] = {}
    for log in found:
        parent, name = os.path.split(log.path)
        if name == "trainer_state.json":
            match = CHECKPOINT_DIR.fullmatch(os.path.basename(parent))
            output_dir = os.path.dirname(parent) if match else parent
            states.setdefault(output_dir, []).append((int(match.group(1)) if match else -1, log.path))
    chosen: dict[str, tuple[str, int]] = {}
    dropped: set[str] = set()
    for output_dir, candidates in states.items():
        if len(candidates) > 1:   # the final state beside the checkpoints, else the highest step's
            _number, path = max(candidates, key=lambda c: (c[0] < 0, c[0]))
            chosen[path] = (output_dir, len(candidates))
            dropped |= {p for _n, p in candidates if p != path}
    kept = []
    for log in found:
        if log.path in chosen:
            output_dir, count = chosen[log.path]
            log = replace(log, run_name=output_dir, notes=log.notes + (
                f"read {os.path.relpath(log.path, output_dir)}, the last of {count} trainer states in {output_dir} "
                "(each checkpoint's state is the same run up to its step)",))
        if log.path not in dropped:
            kept.append(log)
    return kept


def expand_paths(paths, input_format: str = "auto") -> list[LogInput]:
    """Files as given, the logs inside a directory, glob matches, and '-' for stdin. A path
    that matches nothing is a usage error, not a silent skip."""
    found: list[LogInput] = []
    skipped: list[str] = []
    for p in paths:
        if p == "-":
            found.append(LogInput(p))
        elif os.path.isdir(p):
            logs, passed_over = _walk(p, input_format)
            found += logs
            skipped += passed_over
        elif os.path.exists(p):
            if is_event_file(p) and input_format in ("auto", "tensorboard"):
                found.append(LogInput(p, "tensorboard", (p,)))
            elif p.endswith(".wandb") and input_format in ("auto", "wandb") and run_log(os.path.dirname(p) or "."):
                found.append(LogInput(os.path.dirname(p) or ".", "wandb-run", (p,)))
            elif input_format in ("auto", "mlflow") and is_mlflow_db(p):
                found.append(LogInput(p, "mlflow"))
            else:
                found.append(LogInput(p))
        elif any(ch in p for ch in "*?["):
            matches = sorted(m for m in glob.glob(p, recursive=True))
            if not matches:
                raise UsageError(f"{p}: the pattern matches no file")
            found += expand_paths(matches, input_format)
        else:
            raise missing_path(p)
    if not found:
        raise UsageError("no runs found: " + ("; ".join(skipped) if skipped else
                         "the paths hold no logs (.csv, .tsv, .jsonl, trainer_state.json, "
                         "TensorBoard event files, MLflow stores; name other files explicitly)"))
    if skipped:   # said once, with the first input's runs
        found[0] = replace(found[0], notes=found[0].notes + tuple(skipped))
    return found


def missing_path(path: str) -> SiamdiagError:
    """Why ``path`` cannot be used when it does not resolve: a symlink loop, a symlink to
    nothing, a directory on the way that may not be searched, or simply nothing there."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return InputError(path, "symlink loop (too many levels of symbolic links)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return InputError(path, f"cannot open: {exc.strerror}")
        if os.path.islink(path):
            return InputError(path, f"broken symlink (it points to {os.readlink(path)}, which does not exist)")
    return UsageError(f"{path}: no such file or directory")


def input_files(paths, options: ReadOptions = ReadOptions()) -> set[tuple[int, int]]:
    """(device, inode) of every file that reading ``paths`` (and the tracking URI, when it is a
    database or file store) opens: a log found inside a directory, or a hard link to one, is the
    same file whatever the path that reaches it."""
    names: list[str] = []
    logs = inputs_of(paths, options)
    store = local_store(options.tracking_uri) if options.tracking_uri else None
    if store:
        logs.append(LogInput(store, "mlflow"))
    for log in logs:
        if log.format in ("mlflow", "dvclive") and os.path.isdir(log.path):
            names += [os.path.join(root, f) for root, _dirs, files in os.walk(log.path) for f in files]
        elif log.path != "-":
            names += log.files or [log.path]
    identities = set()
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue  # reading it reports the problem
        identities.add((st.st_dev, st.st_ino))
    return identities


def read_input(log: LogInput, options: ReadOptions, label_runs_by_source: bool) -> list[RawRun]:
    """The runs in one input, named and annotated as the input says."""
    runs = _read_input(log, options, label_runs_by_source)
    if log.run_name is not None and len(runs) == 1:
        runs = [replace(runs[0], name=log.run_name)]
    return [replace(run, notes=run.notes + log.notes) for run in runs] if log.notes else runs


def _read_input(log: LogInput, options: ReadOptions, label_runs_by_source: bool) -> list[RawRun]:
    fmt = log.format or options.input_format
    if fmt == "mlflow":
        return read_mlflow_store(log.path, options)
    if fmt == "tensorboard":
        from .readers.tensorboard import read_writer_directory   # (loaded with the first event files)

        runs = read_writer_directory(log.path, log.files or (log.path,), log.children)
        if not runs and not log.children:
            raise InputError(log.path, "no scalar summaries in these TensorBoard event files")
        return [series_to_run(run.path, run.path, run.series, options.overrides, run.notes,
                              Tracker("tensorboard", run.path)) for run in runs]
    if fmt == "dvclive":
        if not is_dvclive_dir(log.path):
            raise InputError(log.path, "not a DVCLive directory (no plots/metrics/)")
        series, notes = read_dvclive(log.path)
        if not series:
            raise InputError(log.path, "no metric files (.tsv) in this DVCLive directory's plots/metrics/")
        return [series_to_run(log.path, log.path, series, options.overrides, notes, Tracker("dvclive", log.path))]
    if fmt == "wandb-run":
        series, info, notes = read_wandb_run(list(log.files))
        if not series:
            raise InputError(log.files[0], "no numeric history in this W&B run")
        return [series_to_run(log.path, log.path, series, options.overrides, notes,
                              Tracker("wandb", log.path, info.run_id if info else ""))]
    source = "<stdin>" if log.path == "-" else log.path
    runs = read_delimited_runs(log.path, source, fmt, options, label_runs_by_source)
    if runs is not None:
        return runs
    text = textfile.read_text(log.path, source)
    if fmt == "auto":
        fmt = detect_format(log.path, text)
    reread = None if log.path == "-" else (lambda: textfile.read_text(log.path, source))
    table = TEXT_READERS[fmt](text, source, options.pattern, reread)
    del text   # a reader that can reread keeps no copy: the text is freed before the runs are built
    return table_to_runs(table, source, options.overrides, label_runs_by_source)


def read_delimited_runs(path: str, source: str, fmt: str, options: ReadOptions,
                        label_runs_by_source: bool) -> list[RawRun] | None:
    """The runs of a CSV/TSV log on disk: a short one of plain numbers read by numpy, without
    loading pandas (``plain_csv``), any other read without holding its bytes or text (the memory
    a large log needs is then its table alone). None when it must be read whole: stdin, gzip,
    another format, or a file that is not clean text (whose problem the whole-file reader locates)."""
    if path == "-" or (fmt if fmt != "auto" else format_from_name(path)) not in ("csv", "tsv"):
        return None
    try:
        if textfile.is_gzip(path):
            return None
        start_text = textfile.head(path)
        if fmt == "auto":   # a named .csv/.tsv: only its header decides (a W&B chart export?)
            fmt = detect_format(path, start_text)
        if fmt not in ("csv", "tsv"):
            return None
        columns = read_plain_numbers(path, DELIMITERS[fmt])
        runs = None if columns is None else numbers_to_run(columns, source, options.overrides)
        if runs is not None:
            return runs
        from .readers.delimited import read_delimited_file   # (pandas: loaded with the first log that needs it)

        table = read_delimited_file(path, source, DELIMITERS[fmt], start_text)
    except (OSError, textfile.NotPlainText):
        return None
    return table_to_runs(table, source, options.overrides, label_runs_by_source)


def read_mlflow_store(path: str, options: ReadOptions) -> list[RawRun]:
    """The runs of an MLflow store on disk, a database file or a file store's directory (a
    store, an experiment or a run), that the run filter keeps."""
    pick = functools.partial(needed_metrics, options=options, source=path)
    if os.path.isfile(path):
        return tracked_to_runs(read_mlflow_db(path, options.mlflow_runs, pick), path, options,
                               "sqlite:///" + os.path.abspath(path))
    if not (is_run_dir(path) or holds_runs(path) or find_run_dirs(path)):
        raise InputError(path, "not an MLflow store (no run directory with meta.yaml and metrics/, "
                         "nor an MLflow SQLite database)")
    return tracked_to_runs(read_file_store(path, options.mlflow_runs, pick), path, options)


def needed_metrics(names: list[str], options: ReadOptions, source: str) -> list[str]:
    """The metrics of an MLflow run that judging it reads (the loss, gradient norm, learning
    rate and Siamese statistics the column rules pick): only their histories are fetched. All of
    them when no loss is found among them, so that reading says why."""
    try:
        return sorted(set(metric_roles(detect_columns(names, options.overrides, source)).values()))
    except SiamdiagError:
        return names


def tracked_to_runs(tracked: list[TrackedRun], source: str, options: ReadOptions, uri: str | None = None) -> list[RawRun]:
    """Runs named alike whichever of the three MLflow sources they come from (``unique_names``),
    each with its tracking URI and run id (a file store's URI is its root's, two levels above the
    run directory)."""
    return [series_to_run(name, run.source or source, run.series, options.overrides, run.notes,
                          Tracker("mlflow", uri or pathlib.Path(run.source).absolute().parent.parent.as_uri(), run.run_id))
            for name, run in zip(unique_names(tracked), tracked)]


def local_store(uri: str) -> str | None:
    """The path of a tracking URI that names a store on disk (``sqlite:///`` a database file,
    ``file:`` or a bare path a file store); None for a server."""
    if uri.startswith("sqlite:///"):
        return urllib.parse.unquote(uri[len("sqlite:///"):])
    if uri.startswith("file:"):
        return urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    return None if "://" in uri else uri


def read_tracking(uri: str, options: ReadOptions) -> list[RawRun]:
    """The runs on an MLflow tracking URI: ``sqlite:///`` databases and file stores (``file:`` or a
    path) are read directly; any other URI through MlflowClient (the 'mlflow' extra)."""
    path = local_store(uri)
    if path is not None:
        if not os.path.exists(path):
            raise UsageError(f"MLflow tracking URI {uri}: nothing at {path}")
        return read_mlflow_store(path, options)
    from .readers.mlflow_tracking import read_tracking_uri

    pick = functools.partial(needed_metrics, options=options, source=uri)
    return tracked_to_runs(read_tracking_uri(uri, options.mlflow_runs, pick, options.tracking_timeout), uri, options, uri)


def inputs_of(paths, options: ReadOptions = ReadOptions()) -> list[LogInput]:
    """The inputs under ``paths``; none when only a tracking URI is to be read."""
    return expand_paths(paths, options.input_format) if paths or not options.tracking_uri else []


def tracked_runs(options: ReadOptions) -> list[RawRun]:
    return read_tracking(options.tracking_uri, options) if options.tracking_uri else []


def require_runs(found: int, logs: list[LogInput], options: ReadOptions) -> None:
    """MLflow stores can hold no run that the filters keep (or none with metrics), and a
    writer's directory no scalars: say so rather than report nothing."""
    if found:
        return
    if options.tracking_uri or any(log.format == "mlflow" for log in logs):
        raise UsageError("no runs found: no MLflow run with metrics"
                         + (" matches the experiment / run-name filter" if options.mlflow_runs != RunFilter() else ""))
    raise UsageError("no runs found: no scalar summaries in " + ", ".join(log.path for log in logs))


def read_runs(paths, options: ReadOptions = ReadOptions()) -> list[RawRun]:
    """Every run in every input, in input order, then the runs of the tracking URI if one is set."""
    logs = inputs_of(paths, options)
    runs = [run for log in logs for run in read_input(log, options, label_runs_by_source=len(logs) > 1)]
    runs += tracked_runs(options)
    require_runs(len(runs), logs, options)
    return runs
