"""OIDs, templates and code lists of the SDO CDA documents (IG ans.fhir.fr.sdo 4.0.7, "Contenu du dossier").

Shared by the parser (:mod:`vtdui.cda.parse`), the simulator's builder and its dataset, so that what
one writes the other reads. Facts only; the source of each table is given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vtdui.cda._nomenclatures import CATEGORIE_ORGANISATION, TYPE_DROIT_PRESTATION
from vtdui.cda.records import Mdph

__all__ = [
    "CATEGORIE_ORGANISATION",
    "CODE_SYSTEM_OF",
    "EVALUATION_ENTRIES",
    "EVALUATION_SECTIONS",
    "KNOWN_CODES",
    "MDPH_NAMES",
    "TYPE_DROIT_PRESTATION",
    "EvaluationEntry",
    "mdph_for_department",
    "mdph_oid",
]

CDA_NS: Final = "urn:hl7-org:v3"
CNSA_NS: Final = "urn:cnsaSDO"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"

# Document templates (1st templateId) and the generic HL7 CDA template (2nd templateId)
TEMPLATE_DECISION: Final = "1.2.250.1.213.1.1.1.4.8"
TEMPLATE_EVALUATION: Final = "1.2.250.1.213.1.1.1.4.9"
TEMPLATE_CDA_DOCUMENT: Final = "2.16.840.1.113883.10.12.2"
TEMPLATE_CDA_SECTION: Final = "2.16.840.1.113883.10.12.201"
TEMPLATE_CDA_OBSERVATION: Final = "2.16.840.1.113883.10.12.303"

# Section / entry templates
SECTION_DEATH: Final = "1.2.250.1.213.1.1.2.228"
ENTRY_DEATH: Final = "1.2.250.1.213.1.1.3.176"
SECTION_DECISION: Final = "1.2.250.1.213.1.1.2.235"
SECTION_EVALUATION: Final = "1.2.250.1.213.1.1.2.229"

# Header constants
TYPE_ID_ROOT: Final = "2.16.840.1.113883.1.3"
TYPE_ID_EXTENSION: Final = "POCD_HD000040"
DOC_CODE: Final = "18825-0"
DOC_CODE_SYSTEM: Final = "2.16.840.1.113883.4.642.3.240"
DOC_CODE_DISPLAY: Final = "Medical social services attachment"
CONFIDENTIALITY_SYSTEM: Final = "2.16.840.1.113883.5.25"
OID_VIATRAJECTOIRE: Final = "1.2.250.1.213.8.1"

# Identifiers
OID_INS_NIR: Final = "1.2.250.1.213.1.4.8"
OID_INS_NIA: Final = "1.2.250.1.213.1.4.9"
OID_SS_NIR: Final = "1.2.250.1.213.1.4.13"
OID_SS_NIA: Final = "1.2.250.1.213.1.4.14"
OID_ID_NAT_STRUCT: Final = "1.2.250.1.71.4.2.2"
MDPH_ARC: Final = "1.2.250.1.213.7."

# Code systems (CNSA nomenclatures are under 1.2.250.1.213.3.3.)
CS_GENDER: Final = "2.16.840.1.113883.5.1"
CS_ROLE_CODE: Final = "2.16.840.1.113883.5.111"  # TRE_R216-HL7RoleCode
CS_PROTECTION_JURIDIQUE: Final = "1.2.250.1.213.1.1.4.327"  # TRE_R217
CS_MESURE_PROTECTION: Final = "1.2.250.1.213.3.3.208"
CS_STATUT_DECES: Final = "1.2.250.1.213.3.3.100"
CS_TYPE_DECISION: Final = "1.2.250.1.213.3.3.202"
CS_MOTIVATION: Final = "1.2.250.1.213.3.3.148"
CS_TYPE_DROIT: Final = "1.2.250.1.213.3.3.204"
CS_NATURE_DROIT: Final = "1.2.250.1.213.3.3.151"
CS_QUALIFICATION: Final = "1.2.250.1.213.3.3.171"
CS_CARACTERISATION: Final = "1.2.250.1.213.3.3.98"
CS_MOTIF_CARACTERISATION: Final = "1.2.250.1.213.3.3.141"
CS_TEMPORALITE: Final = "1.2.250.1.213.3.3.31"  # TRE_R240
CS_CATEGORIE_ETABLISSEMENT: Final = "1.2.250.1.213.1.6.1.8"  # TRE_R66
CS_CATEGORIE_ORGANISATION: Final = "1.2.250.1.213.3.3.39"  # TRE_R244
CS_SPECIALISATION: Final = "1.2.250.1.213.3.3.41"  # TRE_R245
CS_MODE_ENTREE_DITEP: Final = "1.2.250.1.213.3.3.138"
CS_MODE_PRISE_EN_CHARGE: Final = "1.2.250.1.213.3.3.13"  # TRE_R213
CS_UNITE: Final = "1.2.250.1.213.3.3.211"
CS_PERIODICITE: Final = "1.2.250.1.213.3.3.163"

#: Codes whose full list is known (element code system -> code -> display). For the other CNSA
#: nomenclatures only sample codes are known, so the parser checks their code system only.
KNOWN_CODES: Final[dict[str, dict[str, str]]] = {
    CS_TYPE_DROIT: TYPE_DROIT_PRESTATION,
    CS_CATEGORIE_ORGANISATION: CATEGORIE_ORGANISATION,
    # No_Type_Decision uses the TRE_R327 codes (JDV_J398 equivalence).
    CS_TYPE_DECISION: {
        "1": "Attribution", "2": "Rejet", "3": "Sursis", "4": "Non attribution supplémentaire",
        "5": "Clôture de droit", "6": "Renouvellement", "7": "Révision",
    },
    CS_QUALIFICATION: {"1": "cible", "2": "alternative"},
    CS_TEMPORALITE: {"01": "Temporaire", "02": "Permanent"},
    CS_MODE_ENTREE_DITEP: {"1": "SESSAD", "2": "ITEP internat", "3": "ITEP externat", "4": "ITEP semi-internat"},
    # TRE_R213: 49 was in JDV_J264 until 2026-07 and remains an active TRE_R213 code.
    CS_MODE_PRISE_EN_CHARGE: {
        "46": "Hébergement (accueil jour et nuit)", "47": "Accueil de jour", "48": "Accueil de nuit",
        "49": "Sur les lieux de vie",
    },
    CS_GENDER: {"M": "Masculin", "F": "Féminin", "U": "Inconnu"},
}

#: CDA element (local name) -> code system the IG expects there.
CODE_SYSTEM_OF: Final[dict[str, str]] = {
    "typeDeDecision": CS_TYPE_DECISION,
    "motivation": CS_MOTIVATION,
    "typeDroitOuPrestation": CS_TYPE_DROIT,
    "natureDroit": CS_NATURE_DROIT,
    "qualification": CS_QUALIFICATION,
    "niveau": CS_CARACTERISATION,
    "motif": CS_MOTIF_CARACTERISATION,
    "temporaliteAccueil": CS_TEMPORALITE,
    "categorieEtablissement": CS_CATEGORIE_ETABLISSEMENT,
    "categorieOrganisation": CS_CATEGORIE_ORGANISATION,
    "specialisationPriseEnCharge": CS_SPECIALISATION,
    "modeEntreeDITEP": CS_MODE_ENTREE_DITEP,
    "modePriseEnCharge": CS_MODE_PRISE_EN_CHARGE,
    "unite": CS_UNITE,
    "periodicite": CS_PERIODICITE,
}


@dataclass(frozen=True)
class EvaluationEntry:
    """One entry kind of the evaluation section (IG table "Evaluation d'un individu").

    Attributes:
        template: entry templateId.
        section: sub-section templateId.
        label: fixed ``code/originalText``.
        nomenclature: CNSA nomenclature name.
        code_system: its OID.
        repeatable: ``True`` for 0..* entries, ``False`` for 0..1.
    """

    template: str
    section: str
    label: str
    nomenclature: str
    code_system: str
    repeatable: bool


_E = "1.2.250.1.213.1.1.3."
_S = "1.2.250.1.213.1.1.2."
_N = "1.2.250.1.213.3.3."

#: Sub-sections of the evaluation, in document order: templateId -> short name.
EVALUATION_SECTIONS: Final[dict[str, str]] = {
    f"{_S}230": "Eléments environnementaux",
    f"{_S}231": "Eléments personnels et médicaux",
    f"{_S}232": "Eléments scolaires ou professionnels",
    f"{_S}233": "Evolution et besoins",
}

#: Entry templateId -> entry kind, in document order.
EVALUATION_ENTRIES: Final[dict[str, EvaluationEntry]] = {
    e.template: e
    for e in (
        EvaluationEntry(f"{_E}177", f"{_S}230", "CompositionFoyer", "No_Composition_foyer", f"{_N}106", True),
        EvaluationEntry(f"{_E}178", f"{_S}230", "TypeHebergement", "No_Type_hebergement", f"{_N}207", True),
        EvaluationEntry(f"{_E}179", f"{_S}230", "CaracteristiqueLogement", "No_Caracteristique_logement",
                        f"{_N}99", True),
        EvaluationEntry(f"{_E}180", f"{_S}230", "RessourceProprePersonne", "No_Ressource_propre",
                        f"{_N}174", True),
        EvaluationEntry(f"{_E}181", f"{_S}230", "CaracteristiqueTransport", "No_Transport", f"{_N}201", True),
        EvaluationEntry(f"{_E}182", f"{_S}231", "PathologiePrincipale", "No_Pathologie", f"{_N}162", False),
        EvaluationEntry(f"{_E}183", f"{_S}231", "PathologieSecondaire", "No_Pathologie", f"{_N}162", True),
        EvaluationEntry(f"{_E}184", f"{_S}231", "MaladieRare", "No_Maladie_rare", f"{_N}224", False),
        EvaluationEntry(f"{_E}185", f"{_S}231", "HandicapRare", "No_Handicap_rare", f"{_N}225", False),
        EvaluationEntry(f"{_E}186", f"{_S}231", "DeficiencePrincipale", "No_Deficience", f"{_N}108", False),
        EvaluationEntry(f"{_E}187", f"{_S}231", "DeficienceSecondaire", "No_Deficience", f"{_N}108", True),
        EvaluationEntry(f"{_E}188", f"{_S}231", "PriseEnCharge", "No_Prise_en_charge", f"{_N}170", True),
        EvaluationEntry(f"{_E}189", f"{_S}231", "DifficulteRencontree", "No_Activite", f"{_N}86", True),
        EvaluationEntry(f"{_E}190", f"{_S}232", "SituationScolarite", "No_Situation_scolaire", f"{_N}178", False),
        EvaluationEntry(f"{_E}191", f"{_S}232", "TempsScolarisation", "No_Temps_scolarisation", f"{_N}198",
                        False),
        EvaluationEntry(f"{_E}192", f"{_S}232", "EvaluationScolarite", "No_Evaluation_scolarite", f"{_N}122",
                        False),
        EvaluationEntry(f"{_E}193", f"{_S}232", "NiveauFormationProfessionnelle", "No_Niveau_formation_pro",
                        f"{_N}152", False),
        EvaluationEntry(f"{_E}194", f"{_S}232", "SituationProfessionnelle", "No_Situation_travail", f"{_N}179",
                        False),
        EvaluationEntry(f"{_E}195", f"{_S}232", "AptitudePoste", "No_Aptitude_poste", f"{_N}89", False),
        EvaluationEntry(f"{_E}196", f"{_S}232", "PerspectiveProfessionnelle", "No_Perspective_pro", f"{_N}164",
                        False),
        EvaluationEntry(f"{_E}197", f"{_S}233", "EvolutionEnvisagee", "No_Evolution_envisagee", f"{_N}124",
                        False),
        EvaluationEntry(f"{_E}198", f"{_S}233", "EvolutionConstatee", "No_Evolution_constatee", f"{_N}123",
                        False),
        EvaluationEntry(f"{_E}199", f"{_S}233", "BesoinCompensation", "No_Besoin_compensation", f"{_N}94", True),
    )
}

#: MDPH department code -> name as in the IG annex "OID MDPH" (upper case, no accents, hyphens and
#: apostrophes as spaces). Names marked ``# std`` were not read in the annex; they follow the same
#: convention with the standard department name.
MDPH_NAMES: Final[dict[str, str]] = {
    "01": "AIN", "02": "AISNE", "03": "ALLIER", "04": "ALPES DE HAUTE PROVENCE", "05": "HAUTES ALPES",
    "06": "ALPES MARITIMES", "07": "ARDECHE", "08": "ARDENNES", "09": "ARIEGE", "10": "AUBE", "11": "AUDE",
    "12": "AVEYRON", "13": "BOUCHES DU RHONE", "14": "CALVADOS", "15": "CANTAL", "16": "CHARENTE",
    "17": "CHARENTE MARITIME", "18": "CHER", "19": "CORREZE", "2A": "CORSE DU SUD", "2B": "HAUTE CORSE",
    "21": "COTE D OR", "22": "COTES D ARMOR", "23": "CREUSE", "24": "DORDOGNE", "25": "DOUBS", "26": "DROME",
    "27": "EURE", "28": "EURE ET LOIR",
    "29": "FINISTERE", "30": "GARD",  # std
    "31": "HAUTE GARONNE", "32": "GERS", "33": "GIRONDE", "34": "HERAULT", "35": "ILLE ET VILAINE",
    "36": "INDRE", "37": "INDRE ET LOIRE", "38": "ISERE", "39": "JURA", "40": "LANDES", "41": "LOIR ET CHER",
    "42": "LOIRE", "43": "HAUTE LOIRE", "44": "LOIRE ATLANTIQUE", "45": "LOIRET", "46": "LOT",
    "47": "LOT ET GARONNE", "48": "LOZERE", "49": "MAINE ET LOIRE", "50": "MANCHE", "51": "MARNE",
    "52": "HAUTE MARNE", "53": "MAYENNE", "54": "MEURTHE ET MOSELLE",
    "55": "MEUSE", "56": "MORBIHAN", "57": "MOSELLE", "58": "NIEVRE", "59": "NORD", "60": "OISE",  # std
    "61": "ORNE", "62": "PAS DE CALAIS",  # std
    "63": "PUY DE DOME", "64": "PYRENEES ATLANTIQUES", "65": "HAUTES PYRENEES", "66": "PYRENEES ORIENTALES",
    "67": "BAS RHIN", "68": "HAUT RHIN", "69": "RHONE", "70": "HAUTE SAONE", "71": "SAONE ET LOIRE",
    "72": "SARTHE", "73": "SAVOIE", "74": "HAUTE SAVOIE", "75": "PARIS", "76": "SEINE MARITIME",
    "77": "SEINE ET MARNE", "78": "YVELINES", "79": "DEUX SEVRES", "80": "SOMME", "81": "TARN",
    "82": "TARN ET GARONNE", "83": "VAR",
    "84": "VAUCLUSE", "85": "VENDEE", "86": "VIENNE", "87": "HAUTE VIENNE", "88": "VOSGES",  # std
    "89": "YONNE", "90": "TERRITOIRE DE BELFORT", "91": "ESSONNE", "92": "HAUTS DE SEINE",  # std
    "93": "SEINE SAINT DENIS", "94": "VAL DE MARNE", "95": "VAL D OISE",
    "20R": "COLLECTIVITE DE CORSE", "69D": "RHONE", "69M": "METROPOLE DE LYON",
    "6AE": "COMMUNAUTE EUROPEENNE D ALSACE", "971": "GUADELOUPE", "972": "MARTINIQUE",
    "972R": "MARTINIQUE (CTM)", "973": "GUYANE", "973R": "GUYANE (CTG)", "974": "LA REUNION",
    "975": "SAINT-PIERRE-ET-MIQUELON", "976": "MAYOTTE", "976R": "DEPARTEMENT DE MAYOTTE",
    "977": "SAINT-BARTHELEMY", "978": "SAINT-MARTIN", "984": "TERRES AUSTRALES ET ANTARCTIQUES FRANCAISES",
    "986": "WALLIS ET FUTUNA", "987": "POLYNESIE FRANCAISE", "988": "NOUVELLE-CALEDONIE",
    "989": "ILE DE CLIPPERTON", "998": "Département fictif", "999": "HORS FRANCE",
}

_SPECIAL_SUFFIX: Final[dict[str, int]] = {
    "2A": 20, "2B": 21, "20R": 22, "69D": 72, "69M": 73, "6AE": 74, "971": 101, "972": 102, "972R": 103,
    "973": 104, "973R": 105, "974": 106, "975": 107, "976": 108, "976R": 109, "977": 110, "978": 111,
    "984": 112, "986": 113, "987": 114, "988": 115, "989": 116, "998": 117, "999": 118,
}


def mdph_oid(department: str) -> str:
    """Return the MDPH root OID ``1.2.250.1.213.7.<n>`` of a department code (IG annex "OID MDPH").

    Args:
        department: ``01``…``95``, ``2A``, ``2B``, ``20R``, ``69D``, ``69M``, ``6AE``, ``971``…``999``.

    Raises:
        ValueError: the code is not an MDPH code of the annex.
    """
    if department in _SPECIAL_SUFFIX:
        return f"{MDPH_ARC}{_SPECIAL_SUFFIX[department]}"
    if len(department) == 2 and department.isdigit():
        number = int(department)
        # The arc skips 20 (Corsica, numbered 20-22), then 69D/69M/6AE take 72-74.
        if 1 <= number <= 19:
            return f"{MDPH_ARC}{number}"
        if 21 <= number <= 69:
            return f"{MDPH_ARC}{number + 2}"
        if 70 <= number <= 95:
            return f"{MDPH_ARC}{number + 5}"
    raise ValueError(f"unknown MDPH department code {department!r}")


def mdph_for_department(department: str) -> Mdph:
    """Return the :class:`Mdph` (OID and ``<code>-<NAME>`` label) of a department code."""
    return Mdph(oid=mdph_oid(department), label=f"{department}-{MDPH_NAMES[department]}")
