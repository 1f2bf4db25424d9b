"""Seeded, deterministic data of the ViaTrajectoire simulator: establishments, persons, decisions.

Same seed, same data, byte for byte: every random draw comes from a :class:`random.Random` derived
from the seed (never the global generator, never the clock), and each decision has its own generator
derived from ``(seed, index)`` so that the first *k* decisions of a dataset do not depend on how many
decisions are generated after them.

All persons, numbers and names are fictitious; NIR keys and FINESS keys are valid so that the
checks of the real system can run on them.

Coding notes:

* right types (``typeDroitOuPrestation``) are JDV_J402 / No_Type_droit_prestation codes: ``11.5`` ESAT,
  ``13.1``-``13.5`` adult ESMS, ``7.1``/``7.6``/``7.8`` child ESMS; unit categories are TRE_R244 codes.
* FINESS establishment categories (TRE_R66: 246 ESAT, 255 MAS, 437 FAM/EAM, 382 foyer de vie, 446 SAVS,
  445 SAMSAH, 183 IME, 186 ITEP, 182 SESSAD) are not in the IG material: they come from the public FINESS
  nomenclature and are sent without a display name.
* only the CNSA codes printed in the IG or its samples are used for motivations, natures,
  characterisations and evaluation values (the CNSA workbook was not available).
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from vtdui.cda import codes as c
from vtdui.cda.records import (
    Address,
    Caracterisation,
    Code,
    Decision,
    DroitPrestation,
    Evaluation,
    EvaluationObservation,
    Guardian,
    InstanceId,
    Parent,
    Person,
    PersonName,
    PriseEnCharge,
    Quantification,
    Telecom,
)
from vtdui.identifiers import finess_key, nir_key

__all__ = [
    "KINDS",
    "Dataset",
    "Establishment",
    "EstablishmentKind",
    "LegalEntity",
    "RorUnit",
    "SimulatedDecision",
    "generate_decision",
    "generate_entities",
    "generate_evaluation",
    "make_finess",
    "make_nir",
]


@dataclass(frozen=True)
class RorUnit:
    """An internal organisational unit of an establishment, as the ROR describes it.

    Attributes:
        id_unite: national, persistent unit id (ROR).
        nom_unite: unit name.
        categorie_organisation: TRE_R244 code (e.g. ``43`` ESAT unit).
        temporalite_accueil: TRE_R240 code ``01`` (temporaire) or ``02`` (permanent).
        mode_prise_charge: TRE_R213 code ``46``, ``47`` or ``48``.
    """

    id_unite: str
    nom_unite: str
    categorie_organisation: str
    temporalite_accueil: str
    mode_prise_charge: str


@dataclass(frozen=True)
class Establishment:
    """A geographic establishment (FINESS EG) of the dataset.

    Attributes:
        finess_eg: 9-character FINESS EG with a valid key.
        name: establishment name.
        category: FINESS establishment category (TRE_R66 code).
        is_esat: whether it is an ESAT (work-based establishment).
        units: its ROR units.
        kind: short kind name (``ESAT``, ``MAS``, ``IME`` ...).
        department: department code (also the FINESS prefix).
        city: its city.
    """

    finess_eg: str
    name: str
    category: str
    is_esat: bool
    units: tuple[RorUnit, ...]
    kind: str = ""
    department: str = ""
    city: str = ""

    @property
    def id_nat_struct(self) -> str:
        """``"1"`` + FINESS EG, as in ``struct_idnat`` and the CDA ``idNat``."""
        return "1" + self.finess_eg


@dataclass(frozen=True)
class LegalEntity:
    """A legal entity (FINESS EJ) that runs establishments."""

    finess_ej: str
    name: str
    establishments: tuple[Establishment, ...]


@dataclass(frozen=True)
class EstablishmentKind:
    """What a kind of ESMS looks like: FINESS category, matching right type, ROR unit category, care modes.

    Attributes:
        kind: short name.
        finess_category: TRE_R66 category code.
        right_type: No_Type_droit_prestation code of the orientation towards this kind.
        unit_category: TRE_R244 code of its units.
        modes: TRE_R213 care modes its units offer.
        for_children: child ESMS (category 7: Creton amendment, parents).
        unit_names: names of its units.
        local_precisions: free-text ``precisionOrientationLocale`` values that fit (local-nomenclature types).
    """

    kind: str
    finess_category: str
    right_type: str
    unit_category: str
    modes: tuple[str, ...]
    for_children: bool
    unit_names: tuple[str, ...]
    local_precisions: tuple[str, ...] = ()

    @property
    def is_esat(self) -> bool:
        """Whether this kind is an ESAT."""
        return self.right_type == "11.5"


KINDS: tuple[EstablishmentKind, ...] = (
    EstablishmentKind("ESAT", "246", "11.5", "43", ("47",), False,
                      ("Atelier espaces verts", "Atelier blanchisserie", "Atelier restauration")),
    EstablishmentKind("MAS", "255", "13.3", "40", ("46", "47"), False,
                      ("Unité hébergement", "Accueil de jour"), ("Polyhandicap", "Troubles psychiques sévères")),
    EstablishmentKind("FAM", "437", "13.2", "39", ("46", "47"), False, ("Hébergement permanent", "Accueil de jour")),
    EstablishmentKind("Foyer de vie", "382", "13.1", "41", ("46", "47"), False,
                      ("Foyer de vie", "Accueil de jour")),
    EstablishmentKind("SAVS", "446", "13.4", "31", ("47",), False, ("Service",)),
    EstablishmentKind("SAMSAH", "445", "13.5", "32", ("47",), False, ("Service",)),
    EstablishmentKind("IME", "183", "7.1", "48", ("46", "47"), True, ("Internat", "Semi-internat"),
                      ("Troubles du spectre de l'autisme", "Déficience intellectuelle")),
    EstablishmentKind("ITEP", "186", "7.6", "50", ("46", "47"), True, ("Internat", "Externat")),
    EstablishmentKind("SESSAD", "182", "7.8", "57", ("47",), True, ("Antenne",)),
)
_KIND_BY_NAME = {k.kind: k for k in KINDS}

# (department, city, postal code, INSEE commune code)
_PLACES: tuple[tuple[str, str, str, str], ...] = (
    ("35", "Rennes", "35000", "35238"), ("35", "Betton", "35830", "35024"),
    ("22", "Saint-Brieuc", "22000", "22278"), ("29", "Brest", "29200", "29019"),
    ("56", "Vannes", "56000", "56260"), ("44", "Nantes", "44000", "44109"),
    ("14", "Caen", "14000", "14118"), ("69", "Lyon", "69003", "69383"),
    ("13", "Marseille", "13005", "13205"), ("31", "Toulouse", "31000", "31555"),
    ("33", "Bordeaux", "33000", "33063"), ("59", "Lille", "59000", "59350"),
    ("67", "Strasbourg", "67000", "67482"), ("06", "Nice", "06000", "06088"),
    ("34", "Montpellier", "34000", "34172"), ("2A", "Ajaccio", "20000", "2A004"),
    ("2B", "Bastia", "20200", "2B033"), ("75", "Paris", "75015", "75115"),
    ("21", "Dijon", "21000", "21231"), ("95", "Cergy", "95000", "95127"),
)
_FAMILY = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
    "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard",
    "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Faure", "André", "Mercier",
    "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Le Gall", "Le Goff",
)
_GIVEN_F = (
    "Marie", "Camille", "Léa", "Manon", "Chloé", "Inès", "Jade", "Louise", "Emma", "Anaïs", "Sarah", "Élodie",
    "Nathalie", "Isabelle", "Sophie", "Zoé", "Hélène", "Claire",
)
_GIVEN_M = (
    "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Thomas", "Nicolas", "Julien", "Maxime", "Mathis",
    "Noé", "Théo", "Raphaël", "Éric", "Jérôme", "Yann", "Loïc",
)
_STREETS = (
    "rue de la Paix", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue des Lilas", "allée des Peupliers",
    "place de la République", "impasse du Moulin", "rue Pasteur", "chemin des Vignes", "rue de Brest",
)
_ENTITY_NAMES = ("Association Horizon", "Fondation Les Amandiers", "Association Les Tilleuls",
                 "Association L'Escale", "Association Ar Men", "Fondation Saint-Exupéry")
_EST_NAMES = ("Les Glycines", "Le Petit Prince", "Les Hortensias", "La Source", "Les Embruns", "Le Verger",
              "Les Alizés", "La Roseraie", "Le Phare", "Les Coquelicots", "L'Arc-en-ciel", "Les Mouettes")

_MOTIVATION_AUTRE = Code("9999", c.CS_MOTIVATION, "Autre")
_MOTIVATIONS_LOCALES = (
    "Orientation conforme au projet de vie", "Besoin d'un accompagnement adapté",
    "Poursuite du parcours engagé", "Demande de la personne et de sa famille",
)
_EVALUATION_VALUES: tuple[tuple[str, Code], ...] = (
    ("1.2.250.1.213.1.1.3.177", Code("II.1.bis.1", "1.2.250.1.213.3.3.106", "vit seule")),
    ("1.2.250.1.213.1.1.3.178", Code("III.1.1", "1.2.250.1.213.3.3.207", "Domicile personnel")),
    ("1.2.250.1.213.1.1.3.182", Code("A81", "1.2.250.1.213.3.3.162")),
    ("1.2.250.1.213.1.1.3.186", Code("9999", "1.2.250.1.213.3.3.108", "Pas de déficience")),
    ("1.2.250.1.213.1.1.3.199", Code("9999", "1.2.250.1.213.3.3.94", "Pas de besoins")),
)


def make_finess(rng: random.Random, department: str, taken: set[str] | None = None) -> str:
    """Return a new 9-character FINESS with the department prefix and a valid Luhn key.

    Args:
        rng: the random generator.
        department: two-character department (``35``, ``2A`` ...).
        taken: numbers already used; the new one is added to it.
    """
    while True:
        first_eight = department + f"{rng.randrange(1_000_000):06d}"
        value = first_eight + finess_key(first_eight)
        if taken is None or value not in taken:
            if taken is not None:
                taken.add(value)
            return value


def make_nir(rng: random.Random, *, sex: str, birth: date, insee_commune: str) -> str:
    """Return a 15-character NIR (sex, year, month, birth commune, order, key 97 - n mod 97).

    Args:
        rng: the random generator.
        sex: ``M`` or ``F``.
        birth: birth date.
        insee_commune: 5-character INSEE code of the birth commune (``2A004`` for Corsica).
    """
    first = ("1" if sex == "M" else "2") + f"{birth.year % 100:02d}{birth.month:02d}"
    first += insee_commune + f"{rng.randrange(1, 1000):03d}"
    return first + nir_key(first)


def _rng(key: str) -> random.Random:
    # str seeds are hashed with SHA-512 by random.seed: stable across runs and PYTHONHASHSEED.
    return random.Random(key)  # noqa: S311 - simulated data must be reproducible, not secret


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch in "-.")).lower()


def generate_entities(rng: random.Random, n_entities: int = 2, per_entity: int = 4) -> tuple[LegalEntity, ...]:
    """Generate legal entities with their establishments and ROR units.

    The first establishment of the first entity is always an ESAT, so a dataset always has one.

    Args:
        rng: the random generator.
        n_entities: number of legal entities (>= 1).
        per_entity: establishments per entity (>= 1).
    """
    if n_entities < 1 or per_entity < 1:
        raise ValueError("n_entities and per_entity must be at least 1")
    taken: set[str] = set()
    entities: list[LegalEntity] = []
    for e in range(n_entities):
        department, city, _, _ = rng.choice(_PLACES)
        finess_ej = make_finess(rng, department, taken)
        establishments: list[Establishment] = []
        for k in range(per_entity):
            kind = _KIND_BY_NAME["ESAT"] if (e == 0 and k == 0) else rng.choice(KINDS)
            finess_eg = make_finess(rng, department, taken)
            name = f"{kind.kind} {rng.choice(_EST_NAMES)}"
            units: list[RorUnit] = []
            for u, unit_name in enumerate(kind.unit_names[: rng.randint(1, len(kind.unit_names))]):
                units.append(RorUnit(
                    id_unite=f"{finess_eg}{u + 1:03d}",
                    nom_unite=unit_name,
                    categorie_organisation=kind.unit_category,
                    temporalite_accueil=rng.choice(("02", "02", "02", "01")),
                    mode_prise_charge=kind.modes[u % len(kind.modes)],
                ))
            establishments.append(Establishment(
                finess_eg=finess_eg, name=name, category=kind.finess_category, is_esat=kind.is_esat,
                units=tuple(units), kind=kind.kind, department=department, city=city,
            ))
        entities.append(LegalEntity(
            finess_ej=finess_ej, name=f"{_ENTITY_NAMES[e % len(_ENTITY_NAMES)]} {city}",
            establishments=tuple(establishments),
        ))
    return tuple(entities)


def _birth_date(rng: random.Random, today: date, min_age: int, max_age: int) -> date:
    age_days = rng.randint(min_age * 365 + 1, max_age * 365 - 1)
    return today - timedelta(days=age_days)


def _address(rng: random.Random, place: tuple[str, str, str, str]) -> Address:
    _, city, postal_code, _ = place
    return Address(use="PHYS", street=f"{rng.randint(1, 120)} {rng.choice(_STREETS)}",
                   postal_code=postal_code, city=city)


def _phone(rng: random.Random) -> str:
    return f"tel:0{rng.choice('67')}{rng.randrange(10**8):08d}"


def _person(rng: random.Random, *, today: date, kind: EstablishmentKind,
            place: tuple[str, str, str, str]) -> Person:
    sex = rng.choice("MF")
    birth = _birth_date(rng, today, 3, 18) if kind.for_children else _birth_date(rng, today, 20, 59)
    birth_place = rng.choice(_PLACES)
    nir = make_nir(rng, sex=sex, birth=birth, insee_commune=birth_place[3])
    family = rng.choice(_FAMILY)
    givens = _GIVEN_M if sex == "M" else _GIVEN_F
    first = rng.choice(givens)
    second = rng.choice(givens)
    given_list = f"{first} {second}" if second != first and rng.random() < 0.6 else first
    usage_name: str | None = family
    if sex == "F" and not kind.for_children and rng.random() < 0.3:
        usage_name = rng.choice(_FAMILY)
    elif rng.random() < 0.3:
        usage_name = None
    department = place[0]
    mdph = c.mdph_for_department(department)
    address = _address(rng, place)
    if rng.random() < 0.05:  # homeless: address of the domiciliation body
        address = Address(use="PST", street=address.street, postal_code=address.postal_code,
                          city=address.city, additional_locator=f"CCAS de {address.city}")
    telecoms: list[Telecom] = []
    if rng.random() < 0.8:
        telecoms.append(Telecom(_phone(rng), "MC"))
    if rng.random() < 0.5:
        telecoms.append(Telecom(f"mailto:{_ascii(first)}.{_ascii(family)}@example.fr"))
    parents: list[Parent] = []
    opener = nir
    if kind.for_children:
        for relationship, display, p_sex in (("MTH", "Mère", "F"), ("FTH", "Père", "M"))[: rng.randint(1, 2)]:
            p_givens = _GIVEN_M if p_sex == "M" else _GIVEN_F
            parents.append(Parent(
                relationship=Code(relationship, c.CS_ROLE_CODE, display),
                name=PersonName(family=family, given=rng.choice(p_givens),
                                prefix="MME" if p_sex == "F" else None),
                address=Address(use="PHYS", street=address.street, postal_code=address.postal_code,
                                city=address.city),
                telecoms=(Telecom(_phone(rng)),),
                parental_authority=True,
            ))
        # A child's social security opener is a parent: draw the first parent's NIR.
        parent_birth = _birth_date(rng, today, 25, 55)
        opener = make_nir(rng, sex="F" if parents[0].relationship.code == "MTH" else "M", birth=parent_birth,
                          insee_commune=rng.choice(_PLACES)[3])
    guardians: tuple[Guardian, ...] = ()
    if not kind.for_children and rng.random() < 0.2:
        g_place = rng.choice(_PLACES)
        if rng.random() < 0.5:
            guardians = (Guardian(
                measure=Code("1", c.CS_MESURE_PROTECTION, "Tutelle"),
                address=Address(use="PHYS", postal_code=g_place[2], city=g_place[1]),
                telecoms=(Telecom(_phone(rng)),),
                person=PersonName(family=rng.choice(_FAMILY), given=rng.choice(_GIVEN_F + _GIVEN_M)),
            ),)
        else:
            guardians = (Guardian(
                measure=Code("1", c.CS_MESURE_PROTECTION, "Tutelle"),
                address=Address(use="PHYS", street=f"{rng.randint(1, 60)} {rng.choice(_STREETS)}",
                                postal_code=g_place[2], city=g_place[1]),
                organization_name=f"Association tutélaire de {g_place[1]}",
            ),)
    mdph_accueil = None
    transfer = None
    if rng.random() < 0.05:
        mdph_accueil = c.mdph_for_department(rng.choice(_PLACES)[0])
        transfer = today - timedelta(days=rng.randint(1, 60))
    has_ins = rng.random() < 0.9
    return Person(
        mdph_individual_id=InstanceId(mdph.oid, f"IND{rng.randrange(10**8):08d}"),
        ins=InstanceId(c.OID_INS_NIR, nir) if has_ins else None,
        birth_name=family,
        usage_name=usage_name,
        given_names=(given_list,),
        first_given_name=first,
        used_given_name=first if rng.random() < 0.7 else None,
        gender=sex,
        birth_date=birth,
        birth_place_code=birth_place[3],
        birth_place_city=birth_place[1].upper(),
        address=address,
        telecoms=tuple(telecoms),
        insurer_name=rng.choice(("CPAM", "CPAM", "MSA")),
        social_security=InstanceId(c.OID_SS_NIR, opener),
        file_transfer_date=transfer,
        mdph_responsable=mdph,
        mdph_accueil=mdph_accueil,
        guardians=guardians,
        parents=tuple(parents),
    )


def _right(rng: random.Random, *, kind: EstablishmentKind, targets: Sequence[Establishment],
           decided: date) -> DroitPrestation:
    opening = decided + timedelta(days=rng.randint(0, 30))
    years = rng.randint(1, 5)
    # 29 February has no anniversary in most years: rights then run to 28 February.
    expiry = opening.replace(year=opening.year + years, day=min(opening.day, 28) if opening.month == 2
                             else opening.day) - timedelta(days=1)
    temporalite = None
    nb_jours = None
    accueil_sequentiel = None
    if not kind.is_esat:  # TRE_R240 required for 7.x and 13.x, not for ESAT
        temporary = rng.random() < 0.15
        temporalite = Code("01", c.CS_TEMPORALITE, "Temporaire") if temporary else \
            Code("02", c.CS_TEMPORALITE, "Permanent")
        accueil_sequentiel = rng.random() < 0.2
        if temporary and rng.random() < 0.5:
            nb_jours = rng.randint(10, 90)
    mode = rng.choice(kind.modes)
    quantification = None
    if mode == "47" and rng.random() < 0.4:
        quantification = Quantification(
            nombre=float(rng.randint(2, 20)),
            unite=Code("2", c.CS_UNITE, "Journée"),
            periodicite=Code("3", c.CS_PERIODICITE, "Mensuelle"),
        )
    caracterisation = None
    if rng.random() < 0.15:
        caracterisation = Caracterisation(
            niveau=Code("4", c.CS_CARACTERISATION, "Priorité 4"),
            motif=Code("9", c.CS_MOTIF_CARACTERISATION, "Maintien à domicile inadapté"),
            date_mise_a_jour=decided,
        )
    qualification = Code("2", c.CS_QUALIFICATION, "alternative") if rng.random() < 0.2 else \
        Code("1", c.CS_QUALIFICATION, "cible")
    precision_locale = None
    if kind.local_precisions and rng.random() < 0.5:
        precision_locale = rng.choice(kind.local_precisions)
    return DroitPrestation(
        type_droit=Code(kind.right_type, c.CS_TYPE_DROIT, c.TYPE_DROIT_PRESTATION[kind.right_type]),
        nature=Code("1", c.CS_NATURE_DROIT, "Nouveau droit"),
        date_ouverture=opening,
        date_echeance=expiry,
        qualification=qualification,
        amendement_creton=(rng.random() < 0.1) if kind.for_children else None,
        existence_pag=rng.random() < 0.1,
        caracterisation=caracterisation,
        precision_orientation_locale=precision_locale,
        temporalite_accueil=temporalite,
        accueil_sequentiel=accueil_sequentiel,
        id_nat_structs=tuple(t.id_nat_struct for t in targets),
        categorie_etablissement=Code(kind.finess_category, c.CS_CATEGORIE_ETABLISSEMENT),
        categorie_organisation=Code(kind.unit_category, c.CS_CATEGORIE_ORGANISATION,
                                    c.CATEGORIE_ORGANISATION[kind.unit_category]),
        nb_jours_derogation=nb_jours,
        prises_en_charge=(PriseEnCharge(
            mode=Code(mode, c.CS_MODE_PRISE_EN_CHARGE, c.KNOWN_CODES[c.CS_MODE_PRISE_EN_CHARGE][mode]),
            quantification=quantification,
        ),),
    )


def generate_decision(rng: random.Random, entities: Sequence[LegalEntity], now: datetime, *,
                      id_nat_decision: str | None = None,
                      sequence: int | None = None) -> tuple[Person, Decision]:
    """Generate one attribution decision notified to 1 to 3 establishments of ``entities``.

    The right type matches the kind of the designated establishments; the person lives in the
    department of the first one, whose MDPH issues the decision.

    Args:
        rng: the random generator (its state decides everything).
        entities: establishments to choose from.
        now: the simulated current time; the decision is dated 1 to 180 days before.
        id_nat_decision: national id to use; drawn from ``rng`` when ``None``.
        sequence: serial number in the MDPH's id (``<dept>-<year>-<sequence>``); drawn when ``None``.

    Returns:
        The person and the decision.
    """
    establishments = [e for entity in entities for e in entity.establishments]
    if not establishments:
        raise ValueError("no establishment to notify")
    by_kind: dict[str, list[Establishment]] = {}
    for est in establishments:
        by_kind.setdefault(est.kind, []).append(est)
    anchor = rng.choice(establishments)
    same_kind = by_kind[anchor.kind]
    count = min(len(same_kind), rng.randint(1, 3))
    others = [e for e in same_kind if e is not anchor]
    targets = [anchor, *rng.sample(others, count - 1)]
    kind = _KIND_BY_NAME.get(anchor.kind) or _KIND_BY_NAME["ESAT" if anchor.is_esat else "FAM"]
    today = now.date()
    decided = today - timedelta(days=rng.randint(1, 180))
    place = next((p for p in _PLACES if p[0] == anchor.department), rng.choice(_PLACES))
    person = _person(rng, today=today, kind=kind, place=place)
    mdph = person.mdph_responsable or c.mdph_for_department(place[0])
    serial = sequence if sequence is not None else rng.randrange(1, 10**6)
    nat = id_nat_decision if id_nat_decision is not None else f"VT{rng.randrange(10**12):012d}"
    decision = Decision(
        id_nat_decision=nat,
        id_decision=f"{mdph.department}-{decided.year}-{serial:06d}",
        id_decision_root=mdph.oid,
        type_decision=Code("1", c.CS_TYPE_DECISION, "Attribution"),
        date_decision=decided,
        motivations=(_MOTIVATION_AUTRE,),
        motivations_locales=(rng.choice(_MOTIVATIONS_LOCALES),),
        rights=(_right(rng, kind=kind, targets=targets, decided=decided),),
    )
    return person, decision


def generate_evaluation(rng: random.Random, decision: Decision) -> Evaluation:
    """Generate the evaluation of a decision's person, with the CNSA codes the IG samples show."""
    chosen = [pair for pair in _EVALUATION_VALUES if rng.random() < 0.7] or [_EVALUATION_VALUES[0]]
    observations = []
    for template, value in chosen:
        entry = c.EVALUATION_ENTRIES[template]
        observations.append(EvaluationObservation(
            section_template=entry.section, entry_template=template, label=entry.label,
            value=value, nomenclature=entry.nomenclature,
        ))
    base = decision.date_decision or date(2000, 1, 1)
    return Evaluation(date_mise_a_jour=base - timedelta(days=rng.randint(5, 60)),
                      observations=tuple(observations))


@dataclass(frozen=True)
class SimulatedDecision:
    """A decision as the simulator serves it.

    Attributes:
        person: the person.
        decision: the decision (one right, 1..3 designated establishments).
        evaluation: the evaluation served by flux 3.
        notified_to: FINESS EG of the establishments it is notified to.
        notified_at: when it was notified (``meta.lastUpdated`` of its DocumentReference).
    """

    person: Person
    decision: Decision
    evaluation: Evaluation
    notified_to: tuple[str, ...]
    notified_at: datetime

    @property
    def id_nat_decision(self) -> str:
        """The decision's national id."""
        return self.decision.id_nat_decision

    def decision_cda(self, *, version: int = 1) -> bytes:
        """Return the "Individu et décision" CDA (UTF-8) of this decision."""
        from vtdui.simulator.cda_builder import build_decision_cda  # lazy: keeps dataset importable alone

        return build_decision_cda(self.person, self.decision, version=version, effective_time=self.notified_at)

    def evaluation_cda(self, *, version: int = 1) -> bytes:
        """Return the "Evaluation" CDA (UTF-8) of this decision."""
        from vtdui.simulator.cda_builder import build_evaluation_cda

        return build_evaluation_cda(self.person, self.decision, self.evaluation, version=version,
                                    effective_time=self.notified_at)


@dataclass(frozen=True)
class Dataset:
    """The simulator's whole dataset, generated from a seed.

    Attributes:
        seed: the seed.
        now: the simulated current time.
        entities: legal entities and their establishments.
        decisions: decisions, oldest index first.
    """

    seed: int
    now: datetime
    entities: tuple[LegalEntity, ...]
    decisions: tuple[SimulatedDecision, ...]

    @classmethod
    def generate(cls, seed: int, n_decisions: int, now: datetime, *, n_entities: int = 2,
                 per_entity: int = 4, entities: Sequence[LegalEntity] | None = None) -> Dataset:
        """Generate a dataset; the same arguments always give the same dataset.

        Args:
            seed: the seed.
            n_decisions: number of decisions.
            now: simulated current time (use a fixed value for reproducible data).
            n_entities: legal entities to generate (ignored when ``entities`` is given).
            per_entity: establishments per entity (ignored when ``entities`` is given).
            entities: use these establishments instead of generated ones (e.g. the DUI's own).
        """
        if entities is None:
            entities = generate_entities(_rng(f"vtdui:{seed}:entities"), n_entities, per_entity)
        tag = hashlib.sha256(f"vtdui:{seed}".encode()).hexdigest()[:6].upper()
        decisions: list[SimulatedDecision] = []
        for index in range(n_decisions):
            rng = _rng(f"vtdui:{seed}:decision:{index}")
            person, decision = generate_decision(rng, entities, now, id_nat_decision=f"VT{tag}{index + 1:06d}",
                                                 sequence=index + 1)
            evaluation = generate_evaluation(rng, decision)
            notified_at = now - timedelta(seconds=(n_decisions - index) * 3600 + rng.randint(0, 3599))
            decisions.append(SimulatedDecision(
                person=person, decision=decision, evaluation=evaluation,
                notified_to=decision.rights[0].finess_list, notified_at=notified_at,
            ))
        return cls(seed=seed, now=now, entities=tuple(entities), decisions=tuple(decisions))

    @property
    def establishments(self) -> tuple[Establishment, ...]:
        """Every establishment of every entity."""
        return tuple(e for entity in self.entities for e in entity.establishments)

    def establishment(self, finess_eg: str) -> Establishment:
        """Return the establishment with this FINESS EG (``KeyError`` if unknown)."""
        for est in self.establishments:
            if est.finess_eg == finess_eg:
                return est
        raise KeyError(finess_eg)

    def decision(self, id_nat_decision: str) -> SimulatedDecision:
        """Return the decision with this idNat_Decision (``KeyError`` if unknown)."""
        for item in self.decisions:
            if item.id_nat_decision == id_nat_decision:
                return item
        raise KeyError(id_nat_decision)

    def decisions_for(self, finess_eg: str) -> tuple[SimulatedDecision, ...]:
        """Return the decisions notified to an establishment, oldest first."""
        return tuple(d for d in self.decisions if finess_eg in d.notified_to)
