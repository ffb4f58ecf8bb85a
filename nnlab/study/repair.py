"""`nnlab repair results/<study>`: keep what is intact, set aside what is not, and let
`nnlab run` run again exactly the trials that lost something.

What it mends, each only where needed:

- a damaged `optuna.journal` (a record cut short, two glued on one line, garbage): every
  intact record is kept, in order (glued records are split); the whole file as it was is
  moved aside to `optuna.journal.damaged-<time>`, never deleted. Optuna numbers trials by
  the order of their creation records, so a creation lost in the damage is put back as a
  FAIL trial without a key, in the study its visible bytes name, or else where the records
  after it fit best (`_place_lost_creations`); the trials after it keep their numbers.
- complete trials that lost part of their records (their result) or whose curve or
  prediction file is missing (and not in the archive) or unreadable: failed, so the next
  `nnlab run` runs their configuration and seed again (an unreadable file is moved aside
  to `<file>.damaged-<time>` first). With a database storage, such trials are named, not
  failed (Optuna cannot fail a finished trial there).
- a manifest.json that cannot be read: moved aside, and a new one written from spec.toml.

The companion study of configurations is built again from the runs. Repair needs the study
alone: it refuses while another nnlab process works on it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nnlab.errors import NNLabError, StorageError
from nnlab.study.attrs import ERROR, KEY, RESULT
from nnlab.study.configs import companion_name
from nnlab.study.liveness import StudyHold
from nnlab.study.storage import journal_backend, journal_path
from nnlab.study.store import ResultsStore

DAMAGED = ".damaged-"
_OP = re.compile(rb'^\{"op_code":(\d+)')
_STUDY = re.compile(rb'"study_id":(\d+)')
_RECORD_START = b'{"op_code":'
# Optuna's journal operations (optuna.storages.journal._storage.JournalOperation) and the
# fields each needs to be replayed
_FIELDS = {0: ("study_name", "directions"), 1: ("study_id",), 2: ("study_id", "user_attr"),
           3: ("study_id", "system_attr"), 4: ("study_id", "datetime_start"),
           5: ("trial_id", "param_name", "param_value_internal", "distribution"),
           6: ("trial_id", "state", "values"), 7: ("trial_id", "step", "intermediate_value"),
           8: ("trial_id", "user_attr"), 9: ("trial_id", "system_attr"), 10: ()}
_CREATE_STUDY, _DELETE_STUDY, _CREATE_TRIAL, _SET_STATE = 0, 1, 4, 6
_FINISHED = {TrialState.COMPLETE.value, TrialState.PRUNED.value, TrialState.FAIL.value}
MOST_LOST_PER_PIECE = 3  # trial creations a damaged piece is tried as having held
LOST = ("lost in a damaged record of the journal; its configuration and seed (if planned) "
        "are run again")


@dataclass
class Piece:
    """One record of a journal file, or one damaged stretch: `line` (from 1) and `offset`
    (bytes) where it starts, its bytes, the record (None: damaged), and whether it shares
    its line with others (`glued`)."""

    line: int
    offset: int
    raw: bytes
    record: dict[str, Any] | None = None
    glued: bool = False

    def where(self) -> str:
        shown = self.raw[:40].decode("utf-8", "replace")
        what = "a record glued to another" if self.record is not None else "not a record"
        return f"line {self.line} (byte {self.offset}), {what}: {shown!r}" + (
            "..." if len(self.raw) > 40 else "")


def _record(raw: bytes) -> dict[str, Any] | None:
    """The journal record in `raw`, or None if it is not one Optuna can replay."""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("op_code"), int):
        return None
    fields = _FIELDS.get(record["op_code"])
    if fields is None or "worker_id" not in record or any(f not in record for f in fields):
        return None
    return record


def read_journal(path: Path) -> list[Piece]:
    """The records and damaged stretches of the journal at `path`, in order. A line that
    is no record is split where records start (`{"op_code":`), so records glued to a
    damaged one or to each other are kept; a last line without its newline is damaged."""
    data = path.read_bytes()
    pieces = []
    offset = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        end = offset + len(line)
        if line and (record := _record(line)) is not None and end < len(data):
            pieces.append(Piece(number, offset, line, record))
        elif line:
            pieces.extend(_split(number, offset, line, whole=end < len(data)))
        offset = end + 1
    return pieces


def _split(number: int, offset: int, line: bytes, whole: bool) -> Iterator[Piece]:
    """The records and damaged stretches of a line that is no record (`whole`: it has its
    newline)."""
    starts = [m.start() for m in re.finditer(re.escape(_RECORD_START), line)]
    bounds = sorted({0, *starts, len(line)})
    damaged_from = None
    for begin, end in zip(bounds, bounds[1:], strict=False):
        record = _record(line[begin:end]) if whole or end < len(line) else None
        if record is None:
            damaged_from = begin if damaged_from is None else damaged_from
            continue
        if damaged_from is not None:
            yield Piece(number, offset + damaged_from, line[damaged_from:begin])
            damaged_from = None
        yield Piece(number, offset + begin, line[begin:end], record, glued=True)
    if damaged_from is not None:
        yield Piece(number, offset + damaged_from, line[damaged_from:])


def first_damage(path: Path) -> str | None:
    """Where the journal at `path` is first damaged ("line N (byte B): '...'"), or None."""
    try:
        pieces = read_journal(path)
    except OSError:
        return None
    return next((p.where() for p in pieces if p.record is None or p.glued), None)


# --- lost trial creations -------------------------------------------------------------------


def _placeholder(study_id: int) -> dict[str, Any]:
    """A creation record for a trial whose own was lost: FAIL, no key, no params."""
    return {"op_code": _CREATE_TRIAL, "worker_id": "nnlab-repair", "study_id": study_id,
            "datetime_start": None, "state": TrialState.FAIL.value, "value": None,
            "values": None, "distributions": {}, "params": {}, "user_attrs": {ERROR: LOST},
            "system_attrs": {}, "intermediate_values": {}}


def _misfits(records: list[dict[str, Any]]) -> int:
    """How many of `records` Optuna's replay would skip: operations on studies or trials
    that do not exist or trials that have finished, and claims of trials that are not
    waiting. A whole journal has few (a heartbeat written as its trial ended); trials
    numbered wrongly make many."""
    names: dict[int, str] = {}
    trials: dict[int, Any] = {}
    next_study, misfits = 0, 0
    for record in records:
        op = record["op_code"]
        if op == _CREATE_STUDY:
            if record["study_name"] not in names.values():
                names[next_study] = record["study_name"]
                next_study += 1
        elif op == _CREATE_TRIAL:
            if record["study_id"] in names:
                trials[len(trials)] = record.get("state", TrialState.RUNNING.value)
            else:
                misfits += 1
        elif "trial_id" in _FIELDS[op]:
            state = trials.get(record["trial_id"])
            if state is None or state in _FINISHED:
                misfits += 1
            elif op == _SET_STATE:
                if record["state"] == TrialState.RUNNING.value and (
                        state != TrialState.WAITING.value):
                    misfits += 1
                else:
                    trials[record["trial_id"]] = record["state"]
        elif "study_id" in _FIELDS[op]:
            if record["study_id"] not in names:
                misfits += 1
            elif op == _DELETE_STUDY:
                del names[record["study_id"]]
    return misfits


def _candidates(piece: Piece, study_ids: list[int], absent: list[str]
                ) -> list[list[dict[str, Any]]]:
    """The creations a damaged piece may have held, as records: what its visible start
    says (one record: a trial creation, a study creation or neither), else none, 1 to
    MOST_LOST_PER_PIECE trial creations in one study, or the creation of a study of
    `absent` (names no intact record creates)."""
    studies = [[_study_placeholder(name)] for name in absent]
    if (op := _OP.match(piece.raw)) is not None:
        if int(op[1]) == _CREATE_STUDY:
            return studies or [[]]
        if int(op[1]) != _CREATE_TRIAL:
            return [[]]
        if (study := _STUDY.search(piece.raw)) is not None:
            return [[_placeholder(int(study[1]))]]
        return [[_placeholder(s)] for s in study_ids]
    options: list[list[dict[str, Any]]] = [[], *studies]
    for count in range(1, MOST_LOST_PER_PIECE + 1):
        options += [[_placeholder(s)] * count for s in study_ids]
    return options


def _study_placeholder(name: str) -> dict[str, Any]:
    """A creation record for the study `name`, whose own was lost."""
    return {"op_code": _CREATE_STUDY, "worker_id": "nnlab-repair", "study_name": name,
            "directions": [StudyDirection.MAXIMIZE.value]}


def _place_lost_creations(pieces: list[Piece], absent: list[str]
                          ) -> tuple[list[dict[str, Any]], int]:
    """The records to keep, with a placeholder for each creation the damaged pieces held,
    and how many placeholders. Each damaged piece in turn takes the candidate
    (`_candidates`) with which the fewest records misfit (`_misfits`), fewest creations
    first."""
    choice: dict[int, list[dict[str, Any]]] = {}
    damaged = [i for i, piece in enumerate(pieces) if piece.record is None]

    def records() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            out += choice.get(i, []) if piece.record is None else [piece.record]
        return out

    for i in damaged:
        studies = sorted({p.record["study_id"] for p in pieces[:i] if p.record is not None
                          and p.record["op_code"] == _CREATE_TRIAL}) or [0]
        scored = []
        for option in _candidates(pieces[i], studies, absent):
            choice[i] = option
            scored.append((_misfits(records()), len(option), option))
        choice[i] = min(scored, key=lambda s: (s[0], s[1]))[2]
        absent = [name for name in absent if _study_placeholder(name) not in choice[i]]
    return records(), sum(len(option) for option in choice.values())


# --- the repair --------------------------------------------------------------------------


@dataclass
class RepairSummary:
    """What `repair` did, as lines to print; `changed` is False when nothing needed it."""

    lines: list[str] = field(default_factory=list)
    changed: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)
        self.changed = True


def stamp() -> str:
    """The time as a file name suffix: 20240131-235959."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def set_aside(path: Path, when: str) -> Path:
    """Rename `path` to `<path>.damaged-<when>` (never over another file); returns it."""
    target = path.with_name(f"{path.name}{DAMAGED}{when}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED}{when}-{n}")
    os.rename(path, target)
    return target


def repair_manifest(folder: Path, storage: str | None, summary: RepairSummary,
                    when: str) -> None:
    """A manifest.json that cannot be read is moved aside and written again from
    spec.toml, naming `storage` (default: the journal file in the folder, if there is
    one)."""
    from nnlab.study.manifest import now
    from nnlab.study.spec import StudySpec
    from nnlab.study.storage import DEFAULT_JOURNAL, redact, resolve_storage

    store = ResultsStore(folder)
    if not store.manifest_path.is_file():
        return
    try:
        store.read_manifest()
        return
    except NNLabError as err:
        problem = str(err)
    if storage is None and not (folder / DEFAULT_JOURNAL).is_file():
        raise StorageError(f"{problem}; its storage is not a journal file in {folder}: give "
                           "its storage URL to repair it")
    spec = StudySpec.from_toml(store.spec_path)
    aside = set_aside(store.manifest_path, when)
    store.write_manifest({"study": spec.name, "created": now(),
                          "storage": redact(resolve_storage(storage, folder)),
                          "spec_digest": spec.digest(), "repaired": now(),
                          "invocations": []})
    summary.say(f"{store.manifest_path}: could not be read; moved to {aside.name} and "
                "written again from spec.toml (its record of earlier runs is in the old file)")


def repair_journal(path: Path, names: tuple[str, ...], summary: RepairSummary,
                   when: str) -> bool:
    """Rewrite a damaged journal with its intact records (see the module docstring);
    `names`: the studies it should hold (the study and its companion). Returns whether it
    was damaged."""
    pieces = read_journal(path)
    damaged = [piece for piece in pieces if piece.record is None]
    if not damaged and not any(piece.glued for piece in pieces):
        return False
    created = {p.record["study_name"] for p in pieces
               if p.record is not None and p.record["op_code"] == _CREATE_STUDY}
    absent = [name for name in names if name not in created]
    records, lost_creations = _place_lost_creations(pieces, absent)
    first = next(p for p in pieces if p.record is None or p.glued)
    summary.say(f"{path}: {len(damaged)} damaged stretch(es) ({sum(len(p.raw) for p in damaged)}"
                f" bytes; first: {first.where()}); kept {len(pieces) - len(damaged)} "
                f"intact records" + (f", and put back {lost_creations} creation(s) they "
                                     "held (trials failed, to run again)"
                                     if lost_creations else ""))
    _write_journal(path, records, when, summary)
    return True


def _write_journal(path: Path, records: list[dict[str, Any]], when: str,
                   summary: RepairSummary) -> None:
    """Write `records` as the journal at `path`, the old file moved aside first."""
    fresh = path.with_name(f".{path.name}.repaired")
    with fresh.open("wb") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    aside = set_aside(path, when)
    os.rename(fresh, path)
    summary.lines.append(f"{path}: the file as it was is in {aside.name}")


def retire(path: Path, trial_ids: dict[int, str], when: str, summary: RepairSummary) -> None:
    """Fail the finished journal trials `trial_ids` (id -> why): their records that ended
    them are dropped (the old file is moved aside) and they are failed with `why`."""
    if not trial_ids:
        return
    pieces = read_journal(path)
    records = [p.record for p in pieces if p.record is not None and not (
        p.record["op_code"] == _SET_STATE and p.record.get("trial_id") in trial_ids
        and p.record["state"] in _FINISHED)]
    _write_journal(path, records, when, summary)
    storage = JournalStorage(journal_backend(path))
    for trial_id, why in sorted(trial_ids.items()):
        storage.set_trial_user_attr(trial_id, ERROR, why)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


def damaged_trials(study: optuna.Study) -> dict[int, str]:
    """Finished trials that lost records: complete or pruned runs (with a key) without
    their result, complete trials without a key. id -> why."""
    lost = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                          TrialState.PRUNED)):
        if KEY not in trial.user_attrs and trial.state == TrialState.PRUNED:
            continue  # a sampler's repeat, never run
        missing = [name for name in (KEY, RESULT) if name not in trial.user_attrs]
        if missing or trial.value is None and trial.state == TrialState.COMPLETE:
            lost[trial._trial_id] = (f"damaged: its {', '.join(missing) or 'value'} was lost "
                                     "in a damaged journal record; run again")
    return lost


def repair(folder: str | Path, storage: str | None = None) -> RepairSummary:
    """Repair the study in results folder `folder` (see the module docstring); `storage`:
    its storage, if not the one its manifest names. NNLabError if another nnlab process
    works on the study."""
    from nnlab.study.study import Study

    folder = Path(folder)
    store = ResultsStore(folder)
    if not store.spec_path.is_file():
        raise StorageError(f"{folder}: not a study results folder (expected spec.toml in it)")
    summary, when = RepairSummary(), stamp()
    hold = StudyHold(folder)
    hold.alone("repair it")
    try:
        with store.lock():
            repair_manifest(folder, storage, summary, when)
            study = Study.load(folder, storage)
            journal = journal_path(study.storage, folder)
            if journal is not None and journal.is_file():
                names = (study.spec.name, companion_name(study.spec.name))
                repair_journal(journal, names, summary, when)
            if not study.has_storage():
                summary.lines.append(f"{folder}: no Optuna storage (a committed study): "
                                     "its runs are in trials.parquet and its archive")
                return summary
            _repair_trials(study, journal, summary, when)
    finally:
        hold.release()
    return summary


def _repair_trials(study: Any, journal: Path | None, summary: RepairSummary,
                   when: str) -> None:
    """Fail the finished trials that lost records or files (a journal), or name them (a
    database); set unreadable files aside; have the companion study built again."""
    stored = study.optuna_study()
    by_number = {t.number: t._trial_id for t in stored.get_trials(deepcopy=False)}
    affected = damaged_trials(stored)
    status = study.status()
    for key, what in (("missing_files", "missing"), ("unreadable_files", "unreadable")):
        for kind, numbers in status[key].items():
            for number in numbers:
                if what == "unreadable":
                    aside = set_aside(study.store.trial_path(kind, number), when)
                    summary.say(f"{study.folder / kind}: trial {number}'s file is unreadable;"
                                f" moved to {aside.name}")
                affected.setdefault(by_number[number], f"damaged: its {kind} file was "
                                    f"{what}; run again")
    numbers = {t._trial_id: t.number for t in stored.get_trials(deepcopy=False)}
    listed = ", ".join(f"#{numbers[i]}" for i in sorted(affected))
    if affected and journal is not None:
        retire(journal, affected, when, summary)
        summary.say(f"trials {listed} lost records or files: failed, so `nnlab run` runs "
                    "their configuration and seed again")
    elif affected:
        summary.say(f"trials {listed} lost records or files; a database storage cannot fail "
                    "a finished trial: restore their files, or run the study with --new")
    if not summary.changed:
        summary.lines.append(f"{study.folder}: nothing to repair")
        return
    stored = study.optuna_study()  # the companion study is built again by the next run
    companion = companion_name(study.spec.name)
    if companion in {s.study_name for s in optuna.get_all_study_summaries(stored._storage)}:
        optuna.delete_study(study_name=companion, storage=stored._storage)
    study.store.write_trials(study.trials())
