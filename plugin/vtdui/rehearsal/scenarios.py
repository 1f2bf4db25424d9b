"""The rehearsal's scenarios: the ViaTrajectoire part of the MS-DUI-Va2 referencing, as DUI actions.

Each scenario works on one decision notified to one establishment of the legal entity (``esat``: the
ESAT with ROR units, whose unit statuses REM VT.16 asks for; ``other``: a second establishment) and is a
list of steps. A step is one thing a user or ViaTrajectoire does, with what must follow:

- :class:`Save`: the DUI user sets the ESMS status (and reason) and/or the unit status (and reason) of the
  work-list item and saves (GET-modify-PUT on HAPI); ViaTrajectoire must receive that ESMSTask, conformant;
- :class:`GiveConsent`: the DUI user records the person's consent (POST Consent on HAPI); ViaTrajectoire
  must receive the ESMSConsent, then the evaluation must reach HAPI;
- :class:`RemoteEvent`: the MDPH or another establishment changes a status in ViaTrajectoire; the work list
  must show it after the next inbound cycle;
- :class:`Worklist`: the work list must hold the decision in a given status;
- :class:`NothingSent`: ViaTrajectoire must have received nothing about the decision;
- :class:`PublishJdv`: the terminology server publishes a new version of JDV_J251 with a new reason, and of
  ASS_A32 allowing it for some statuses (the simulator's terminology endpoint; ViaTrajectoire accepts it);
- :class:`Refused`: a DUI save vtdui must keep failed, unsent, for a broken rule;
- :class:`UpdateJdv`: vtdui's JDV are refreshed from the terminology server (``vtdui terminology update``);
- :class:`RetryKept`: the operator retries the save kept failed (``vtdui outbox retry``); it must be sent.

A scenario with ``reprise`` statuses plays "mode reprise": before the first inbound cycle the decision is
tagged for take-over in ViaTrajectoire with these statuses of the establishment, entered in its screens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["NOT_ON_EMBEDDED", "SCENARIOS", "GiveConsent", "NothingSent", "PublishJdv", "Refused", "RemoteEvent",
           "RetryKept", "Save", "Scenario", "Step", "UpdateJdv", "Worklist", "by_name"]

Place = Literal["esat", "other"]


@dataclass(frozen=True)
class Save:
    """The DUI user's save of a status change on the work-list item."""

    statut: str | None = None
    motif: str | None = None
    statut_unite: str | None = None
    motif_unite: str | None = None

    @property
    def label(self) -> str:
        """One line naming the change (``41 / reason 152``, ``44 + unit 181 / reason 84``)."""
        parts = []
        if self.statut:
            parts.append(self.statut + (f" reason {self.motif}" if self.motif else ""))
        if self.statut_unite:
            parts.append(f"unit {self.statut_unite}" + (f" reason {self.motif_unite}" if self.motif_unite else ""))
        return "DUI save: status " + ", ".join(parts)


@dataclass(frozen=True)
class GiveConsent:
    """The DUI user records the person's consent to share the evaluation."""

    label: str = "DUI save: consent recorded (Consent POST)"


@dataclass(frozen=True)
class RemoteEvent:
    """A status set in ViaTrajectoire by the MDPH, or by another establishment the decision is notified to."""

    source: Literal["mdph", "esms"]
    statut: str
    motif: str | None = None

    @property
    def label(self) -> str:
        """One line naming the event."""
        who = "MDPH" if self.source == "mdph" else "other establishment"
        return f"ViaTrajectoire: {who} sets status {self.statut}" + (f" reason {self.motif}" if self.motif else "")


@dataclass(frozen=True)
class Worklist:
    """The work-list item must be in ``statut`` (TRE_R357)."""

    statut: str

    @property
    def label(self) -> str:
        """One line naming the check."""
        return f"work list: decision retrieved, status {self.statut}"


@dataclass(frozen=True)
class NothingSent:
    """ViaTrajectoire received nothing about the decision (what vtdui took over is not sent back)."""

    label: str = "ViaTrajectoire received nothing back"


@dataclass(frozen=True)
class PublishJdv:
    """The terminology server publishes JDV_J251 with reason ``motif`` and ASS_A32 allowing it for ``statuses``."""

    motif: str
    display: str
    statuses: tuple[str, ...]

    @property
    def label(self) -> str:
        """One line naming the publication."""
        return (f"terminology server: new JDV_J251 version with reason {self.motif}, allowed for status "
                f"{', '.join(self.statuses)} by a new ASS_A32 version")


@dataclass(frozen=True)
class Refused:
    """The DUI user's ``save``, which vtdui must keep failed (``rule`` broken) and not send."""

    save: Save
    rule: str

    @property
    def label(self) -> str:
        """One line naming the save and the refusal."""
        return f"{self.save.label}: kept failed by vtdui ({self.rule}), nothing sent"


@dataclass(frozen=True)
class UpdateJdv:
    """vtdui's JDV refreshed from the terminology server, as ``vtdui terminology update --server URL`` does."""

    label: str = "vtdui terminology update: JDV_J251 and ASS_A32 from the terminology server"


@dataclass(frozen=True)
class RetryKept:
    """The operator retries the save kept failed (``vtdui outbox retry ID``); ViaTrajectoire must accept it."""

    save: Save

    @property
    def label(self) -> str:
        """One line naming the retry."""
        return f"operator: vtdui outbox retry of the kept save ({self.save.label.removeprefix('DUI save: ')})"


Step = Save | GiveConsent | RemoteEvent | Worklist | NothingSent | PublishJdv | Refused | UpdateJdv | RetryKept

#: The reason code the JDV update scenario publishes (outside every JDV_J251 version so far).
JDV_UPDATE_MOTIF = "901"


@dataclass(frozen=True)
class Scenario:
    """A named scenario of the referencing."""

    name: str
    title: str
    place: Place
    steps: tuple[Step, ...]
    #: the decision is also notified to the other establishment (a shared decision)
    shared: bool = False
    rem: str = ""
    #: mode reprise: ``(statutESMS, motifESMS)`` entered in ViaTrajectoire's screens before the interoperability
    reprise: tuple[tuple[str, str | None], ...] = ()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("aptitude", "Aptitude: a decision retrieved and in the work list in status 39", "other",
             (Worklist("39"),), rem="flux 1"),
    Scenario("aptitude-reprise", "Aptitude, mode reprise: the decision taken over in the status entered in "
             "ViaTrajectoire (41 then 42), nothing sent back", "other", (Worklist("42"), NothingSent()),
             rem="flux 1, flux 5", reprise=(("41", "152"), ("42", None))),
    Scenario("consent-evaluation", "Consent then evaluation", "other", (GiveConsent(),), rem="flux 2, flux 3"),
    Scenario("contact", "Contact made: 41 with its reason", "other", (Save("41", "152"),), rem="flux 4"),
    Scenario("waiting-list", "Waiting list: 42, unit 182", "esat", (Save("42", statut_unite="182"),),
             rem="flux 4"),
    Scenario("esat-trial", "ESAT trial period 43 / 185 then 44 / 181 with reason 84", "esat",
             (Save("43", statut_unite="185"), Save("44", statut_unite="181", motif_unite="84")), rem="REM VT.16"),
    Scenario("esat-trial-85", "ESAT trial period 43 / 185 then 44 / 181 with reason 85", "esat",
             (Save("43", statut_unite="185"), Save("44", statut_unite="181", motif_unite="85")), rem="REM VT.16"),
    Scenario("admission", "Admission: 47 / 186", "esat", (Save("47", statut_unite="186"),), rem="flux 4"),
    Scenario("refusal", "Refusal: 45 with its reason", "other", (Save("45", "118"),), rem="flux 4"),
    Scenario("exit", "Exit: 48 / 188 with its reason (after admission 47 / 186)", "esat",
             (Save("47", statut_unite="186"), Save("48", statut_unite="188", motif_unite="89")), rem="flux 4"),
    Scenario("mdph-cancellation", "MDPH cancellation: 49", "other", (RemoteEvent("mdph", "49"), Worklist("49")),
             rem="flux 5"),
    Scenario("shared-decision", "Another establishment's status on a shared decision", "other",
             (RemoteEvent("esms", "41", "152"),), shared=True, rem="flux 5"),
    Scenario("jdv-update", f"JDV update: reason {JDV_UPDATE_MOTIF} refused before `vtdui terminology update`, "
             "accepted after", "other",
             (PublishJdv(JDV_UPDATE_MOTIF, "Motif publié pour la répétition", ("41", "45")),
              Refused(Save("41", JDV_UPDATE_MOTIF), "binding-JDV_J251"), UpdateJdv(),
              RetryKept(Save("41", JDV_UPDATE_MOTIF)), Save("45", JDV_UPDATE_MOTIF)), rem="JDV_J251, ASS_A32"),
)

#: Scenarios of the issue this version cannot play on the embedded default, with the reason (shown in the
#: report as "not run", never as a pass).
NOT_ON_EMBEDDED: dict[str, str] = {}


def by_name(names: list[str] | tuple[str, ...]) -> list[Scenario]:
    """The scenarios named (all when ``names`` is empty), in the canonical order.

    Raises:
        ValueError: a name is not a scenario.
    """
    known = {s.name for s in SCENARIOS}
    unknown = [n for n in names if n not in known and n not in NOT_ON_EMBEDDED]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return [s for s in SCENARIOS if not names or s.name in names]
