"""Change detection: which versions of a work-list Task (or a local Consent) are emitted."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from vtdui import sdo
from vtdui.changes import (
    OWN_REQUEST_PREFIX,
    consent_event,
    detect_changes,
    is_own_write,
    own_request_id,
    read_worklist_status,
    request_id_kept,
    stamp_own_write,
    worklist_key,
)

from .outbound_fixtures import FINESS_EG, ID_DECISION, ID_NAT, IME, local_consent, worklist_task


def test_first_user_version_with_a_status_is_reported() -> None:
    task = worklist_task(version="1", statut="41", motif="152", date="2026-05-12")
    [change] = detect_changes(None, task, IME)
    assert (change.statut_esms, change.motif_esms, change.date_statut_esms) == ("41", "152", "2026-05-12")
    assert (change.id_nat_decision, change.id_decision, change.finess_eg) == (ID_NAT, ID_DECISION, FINESS_EG)
    assert (change.task_id, change.task_version) == ("wl-1", "1")
    assert change.statut_unite is None


def test_own_writes_are_never_reported() -> None:
    previous = worklist_task(version="1", statut="39", source=sdo.PLUGIN_SOURCE)
    current = worklist_task(version="2", statut="46", motif="114", source=sdo.PLUGIN_SOURCE + "#vtdui-0a1b2c3d4e")
    assert detect_changes(previous, current, IME) == []
    # ...but the user's change after an own write is
    user = worklist_task(version="3", statut="41", motif="151")
    [change] = detect_changes(current, user, IME)
    assert change.statut_esms == "41"


def _as_hapi_stored(resource: dict[str, Any], request_id: str) -> dict[str, Any]:
    """``resource`` as HAPI stores it: the fragment of ``meta.source`` replaced by the saving request's id."""
    stored = copy.deepcopy(resource)
    meta = stored.setdefault("meta", {})
    meta["source"] = str(meta.get("source", "")).partition("#")[0] + "#" + request_id
    return stored


def _vtdui_write(statut: str, motif: str | None = None, version: str = "1") -> dict[str, Any]:
    """A work-list Task as HAPI stores vtdui's write of it (HapiStore's mark, vtdui's request id)."""
    task = stamp_own_write(worklist_task(version=version, statut=statut, motif=motif, source=sdo.PLUGIN_SOURCE))
    return _as_hapi_stored(task, own_request_id())


def _screen_save(read: dict[str, Any], statut: str, motif: str | None, version: str) -> dict[str, Any]:
    """GET-modify-PUT: the version read, status changed, ``meta`` kept; HAPI gives it its own request id."""
    saved = copy.deepcopy(read)
    saved["meta"]["versionId"] = version
    saved["businessStatus"]["coding"][0]["code"] = statut
    saved.pop("statusReason", None)
    if motif is not None:
        saved["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif}]}
    return _as_hapi_stored(saved, "dYzGpSw4THnVm20O")  # an id HAPI generated for the client's request


def test_a_dui_save_that_kept_the_plugins_meta_is_a_user_change() -> None:
    """GET the plugin's version, change the status, PUT it back with the ``meta`` it came with."""
    stored = _vtdui_write("39")
    assert stored["meta"]["source"].startswith(sdo.PLUGIN_SOURCE + ":")
    assert is_own_write(stored) and detect_changes(None, stored, IME) == []
    saved = _screen_save(stored, "41", "152", version="2")
    assert not is_own_write(saved)
    [change] = detect_changes(stored, saved, IME)
    assert (change.statut_esms, change.motif_esms) == ("41", "152")
    # the save that drops meta is a user change too
    dropped = {k: v for k, v in saved.items() if k != "meta"}
    assert not is_own_write(dropped) and len(detect_changes(stored, dropped, IME)) == 1
    # a note added with the plugin's meta kept reports nothing either way (no status field changed)
    noted = _as_hapi_stored({**copy.deepcopy(stored), "note": [{"text": "rappeler"}]}, "jBkRlVUDtB9wOdRt")
    assert detect_changes(stored, noted, IME) == []


def test_a_save_returning_to_the_status_vtdui_wrote_with_its_meta_kept_is_a_user_change() -> None:
    """vtdui wrote 42 (flux 5, « mode reprise »); the user moves to 43, then back to 42 keeping the meta read.

    The content of the last save is that of vtdui's version (its content mark matches): only the id of
    the request that saved it tells it from vtdui's own write.
    """
    own = _vtdui_write("42", version="1")
    moved = _screen_save(own, "43", None, version="2")
    back = _screen_save(moved, "42", None, version="3")
    assert back["meta"]["source"].partition("#")[0] == own["meta"]["source"].partition("#")[0]
    assert not is_own_write(back)
    [change] = detect_changes(moved, back, IME)
    assert change.statut_esms == "42" and change.task_version == "3"
    # the same content saved by vtdui's own request is its write
    assert is_own_write(_as_hapi_stored(back, own_request_id()))


def test_own_request_ids_fit_what_hapi_keeps() -> None:
    ids = {own_request_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 16 and i.startswith(OWN_REQUEST_PREFIX) for i in ids)
    ident = own_request_id()
    assert request_id_kept(f"{sdo.PLUGIN_SOURCE}:abc#{ident}", ident) is True
    assert request_id_kept(f"{sdo.PLUGIN_SOURCE}:abc", ident) is False  # HAPI keeps the source URI only
    assert request_id_kept(None, ident) is False
    assert request_id_kept("urn:dui#dYzGpSw4THnVm20O", ident) is None  # an unchanged version of another client


def test_the_plugins_own_writes_are_stamped_with_their_mark() -> None:
    for statut, unit in (("46", None), ("41", "185")):
        task = worklist_task(version="4", statut=statut, motif="114", statut_unite=unit, unite="ROR-UNIT-9",
                             source=sdo.PLUGIN_SOURCE)
        assert is_own_write(stamp_own_write(task))  # on a HAPI that keeps the source URI only
        assert is_own_write(_as_hapi_stored(stamp_own_write(task), own_request_id()))
    assert stamp_own_write(worklist_task(statut="41")) == worklist_task(statut="41")  # not the plugin's: as is
    assert is_own_write(worklist_task(statut="41", source=sdo.PLUGIN_SOURCE))  # bare source: the plugin's
    # the plugin's source with the id of a request that is not vtdui's: a client stamped or kept it
    assert not is_own_write(worklist_task(statut="41", source=sdo.PLUGIN_SOURCE + "#dYzGpSw4THnVm20O"))


def test_unrelated_edits_are_not_reported() -> None:
    previous = worklist_task(version="2", statut="41", motif="152", date="2026-05-12")
    current = worklist_task(version="3", statut="41", motif="152", date="2026-05-12")
    current["note"] = [{"text": "called the family"}]
    current["status"] = "completed"
    assert detect_changes(previous, current, IME) == []


def test_a_version_without_any_status_reports_nothing() -> None:
    assert detect_changes(None, worklist_task(version="1"), IME) == []


def test_reason_or_date_change_alone_is_a_new_event() -> None:
    previous = worklist_task(statut="45", motif="114", date="2026-05-20")
    [change] = detect_changes(previous, worklist_task(version="3", statut="45", motif="115", date="2026-05-20"), IME)
    assert (change.statut_esms, change.motif_esms) == ("45", "115")
    [change] = detect_changes(previous, worklist_task(version="3", statut="45", motif="114", date="2026-05-21"), IME)
    assert change.date_statut_esms == "2026-05-21"


def test_unit_change_alone_does_not_repeat_the_esms_status() -> None:
    previous = worklist_task(statut="43", date="2026-05-14", statut_unite="185", unite="ROR-UNIT-9",
                             date_unite="2026-05-14")
    current = worklist_task(version="3", statut="43", date="2026-05-14", statut_unite="181", motif_unite="84",
                            unite="ROR-UNIT-9", date_unite="2026-06-01")
    [change] = detect_changes(previous, current, IME)
    assert change.statut_esms is None and change.date_statut_esms is None
    assert (change.statut_unite, change.motif_unite, change.id_unite, change.date_statut_unite) == (
        "181", "84", "ROR-UNIT-9", "2026-06-01")


def test_esms_and_unit_in_one_version_make_one_change() -> None:
    previous = worklist_task(statut="42", date="2026-05-13")
    current = worklist_task(version="3", statut="47", date="2026-07-01", statut_unite="186", unite="ROR-UNIT-9",
                            date_unite="2026-07-01")
    changes = detect_changes(previous, current, IME)
    assert len(changes) == 1
    assert (changes[0].statut_esms, changes[0].statut_unite) == ("47", "186")


def test_missing_dates_default_to_the_day_of_the_change() -> None:
    current = worklist_task(version="1", statut="47", statut_unite="186", unite="ROR-UNIT-9",
                            last_updated="2026-07-01T08:00:00.000+02:00")
    [change] = detect_changes(None, current, IME)
    assert change.date_statut_esms == "2026-07-01" and change.date_statut_unite == "2026-07-01"


def test_status_date_is_the_date_of_the_change_not_the_previous_statuss() -> None:
    """An item in 39 since 2026-05-01, set to 41 / 152 on 2026-05-12 with its date input untouched."""
    previous = worklist_task(version="2", statut="39", date="2026-05-01", statut_unite="185", unite="ROR-UNIT-9",
                             date_unite="2026-05-01", last_updated="2026-05-01T10:00:00.000+02:00")
    current = worklist_task(version="3", statut="41", motif="152", date="2026-05-01", statut_unite="181",
                            unite="ROR-UNIT-9", date_unite="2026-05-01", last_updated="2026-05-12T09:30:00.000+02:00")
    [change] = detect_changes(previous, current, IME)
    assert (change.date_statut_esms, change.date_statut_unite) == ("2026-05-12", "2026-05-12")


def test_status_date_given_by_the_dui_in_the_input_wins() -> None:
    previous = worklist_task(version="2", statut="39", date="2026-05-01", statut_unite="185", unite="ROR-UNIT-9",
                             date_unite="2026-05-01")
    current = worklist_task(version="3", statut="41", motif="152", date="2026-05-10", statut_unite="181",
                            unite="ROR-UNIT-9", date_unite="2026-05-09", last_updated="2026-05-12T09:30:00.000+02:00")
    current["lastModified"] = "2026-05-11T08:00:00+02:00"
    [change] = detect_changes(previous, current, IME)
    assert (change.date_statut_esms, change.date_statut_unite) == ("2026-05-10", "2026-05-09")


def test_status_date_from_task_last_modified_when_the_save_moved_it_forward() -> None:
    previous = worklist_task(version="2", statut="39", date="2026-05-01", statut_unite="185", unite="ROR-UNIT-9",
                             date_unite="2026-05-01")
    previous["lastModified"] = "2026-05-01T10:00:00+02:00"
    current = worklist_task(version="3", statut="41", motif="152", date="2026-05-01", statut_unite="181",
                            unite="ROR-UNIT-9", date_unite="2026-05-01", last_updated="2026-05-12T09:30:00.000+02:00")
    current["lastModified"] = "2026-05-11T23:30:00+02:00"  # the DUI's local date, not UTC's
    [change] = detect_changes(previous, current, IME)
    assert (change.date_statut_esms, change.date_statut_unite) == ("2026-05-11", "2026-05-11")
    # lastModified carried over unchanged by the save: the day HAPI stored the version
    current["lastModified"] = previous["lastModified"]
    [change] = detect_changes(previous, current, IME)
    assert (change.date_statut_esms, change.date_statut_unite) == ("2026-05-12", "2026-05-12")
    # a first version: its lastModified is the date of the change
    first = worklist_task(version="1", statut="41", motif="152", last_updated="2026-05-12T09:30:00.000+02:00")
    first["lastModified"] = "2026-05-11T16:00:00+02:00"
    [change] = detect_changes(None, first, IME)
    assert change.date_statut_esms == "2026-05-11"


def test_several_quick_changes_are_each_reported_in_order() -> None:
    versions = [worklist_task(version="1", statut="39", source=sdo.PLUGIN_SOURCE)]
    for i, (statut, motif) in enumerate([("40", None), ("41", "151"), ("42", None), ("71", None)], start=2):
        versions.append(worklist_task(version=str(i), statut=statut, motif=motif))
    reported = [c for prev, cur in itertools.pairwise(versions)
                for c in detect_changes(prev, cur, IME)]
    assert [(c.task_version, c.statut_esms) for c in reported] == [("2", "40"), ("3", "41"), ("4", "42"),
                                                                  ("5", "71")]


def test_worklist_key_from_identifier_and_owner() -> None:
    task = worklist_task()
    assert worklist_key(task) == (ID_NAT, FINESS_EG)
    del task["owner"]
    task["input"] = []
    assert worklist_key(task) == (ID_NAT, FINESS_EG)
    assert read_worklist_status({"resourceType": "Task"}).id_nat_decision is None


def test_task_without_decision_reports_nothing() -> None:
    task = worklist_task(version="1", statut="41", motif="152")
    task["identifier"] = []
    task["input"] = []
    assert detect_changes(None, task, IME) == []


def test_status_read_from_inputs_as_a_fallback() -> None:
    task = worklist_task(version="1")
    task["input"].append({"type": sdo.input_type(sdo.STATUT_ESMS),
                          "valueCodeableConcept": {"coding": [{"system": sdo.TRE_R357, "code": "42"}]}})
    [change] = detect_changes(None, task, IME)
    assert change.statut_esms == "42"


# --------------------------------------------------------------------------------------------- consent


def test_new_active_consent_is_an_event() -> None:
    event = consent_event(local_consent())
    assert event is not None
    assert (event.consent_id, event.version, event.finess_eg) == ("c-1", "1", FINESS_EG)
    assert event.decision_reference == {"reference": "Basic/dec-1"}
    assert event.id_nat_decision is None


def test_consent_events_ignored() -> None:
    assert consent_event(local_consent(status="draft")) is None
    assert consent_event(local_consent(source=sdo.PLUGIN_SOURCE)) is None
    # already active before: an edit of an active consent is not a new consent
    assert consent_event(local_consent(version="2"), local_consent()) is None
    # becoming active is
    assert consent_event(local_consent(version="2"), local_consent(status="draft")) is not None
    no_data = local_consent()
    no_data["provision"] = {}
    assert consent_event(no_data) is None
