"""The person (CDA ``patientRole``) → Patient, aligned on TDDUIPatient / TDDUIPatientINS.

The Patient is keyed by the INS when the CDA has one and by the MDPH's individual id otherwise; the
conditional request matches either (``identifier=INS,MDPH-id``), so a person first received without INS
and later with one stays one Patient.
"""

from __future__ import annotations

from typing import Any

from vtdui import sdo
from vtdui.cda.records import Address, InstanceId, Person, PersonName, Telecom
from vtdui.hookcontext import InboundContext
from vtdui.mapping import systems
from vtdui.mapping._fhir import Entry, Resource, concept, fhir_date, full_url, identifier_query, meta, put_entry
from vtdui.mapping.options import MappingOptions

__all__ = [
    "address", "patient_entry", "patient_identifiers", "patient_query", "patient_resource", "patient_url", "telecoms",
]

_GENDER = {"M": "male", "F": "female", "U": "unknown"}


def patient_identifiers(person: Person, options: MappingOptions | None = None) -> list[dict[str, Any]]:
    """The Patient's identifiers: INS-NIR (official) or INS-NIA (temp), then the MDPH individual id (PIN)."""
    out: list[dict[str, Any]] = []
    if person.ins_nir:
        out.append({"use": "official", "type": concept(systems.FR_CORE_V2_0203, systems.ID_TYPE_INS_NIR),
                    "system": sdo.INS_NIR_SYSTEM, "value": person.ins_nir})
    elif person.ins_nia:
        out.append({"use": "temp", "type": concept(systems.FR_CORE_V2_0203, systems.ID_TYPE_INS_NIA),
                    "system": sdo.INS_NIA_SYSTEM, "value": person.ins_nia})
    mdph = _mdph_id(person)
    if mdph is not None:
        out.append({"use": "usual", "type": concept(systems.TDDUI_IDENTIFIER, systems.ID_TYPE_INITIAL_NUMBER),
                    "system": mdph[0], "value": mdph[1]})
    return out


def _mdph_id(person: Person) -> tuple[str, str] | None:
    ident: InstanceId | None = person.mdph_individual_id
    if ident is None or not ident.root or not ident.extension:
        return None
    return f"urn:oid:{ident.root}", ident.extension


def patient_query(person: Person) -> str | None:
    """``identifier=<INS>,<MDPH id>``: matches the Patient by either key; ``None`` if the CDA has neither."""
    pairs = [(i["system"], i["value"]) for i in patient_identifiers(person)]
    return identifier_query(*pairs) if pairs else None


def patient_url(person: Person) -> str:
    """The transaction ``fullUrl`` of the person (stable for the same identifiers)."""
    pairs = [f"{i['system']}|{i['value']}" for i in patient_identifiers(person)]
    return full_url("Patient", *pairs)


def _names(person: Person) -> list[dict[str, Any]]:
    names: list[dict[str, Any]] = []
    if person.birth_name:
        official: dict[str, Any] = {"use": "official", "family": person.birth_name}
        given = list(person.given_names) or ([person.first_given_name] if person.first_given_name else [])
        if given:
            official["given"] = given
        names.append(official)
    if person.usage_name or person.used_given_name:
        usual: dict[str, Any] = {"use": "usual"}
        usual_family = person.usage_name or person.birth_name
        if usual_family:
            usual["family"] = usual_family
        if person.used_given_name:
            usual["given"] = [person.used_given_name]
        names.append(usual)
    return names


def address(value: Address | None) -> dict[str, Any] | None:
    """A FHIR Address; ``PST`` (domiciliation body of a homeless person) is a postal address."""
    if value is None:
        return None
    out: dict[str, Any] = {"use": "home"}
    if value.use == "PST":
        out["type"] = "postal"
    lines = [line for line in (value.additional_locator, value.street) if line]
    if lines:
        out["line"] = lines
    if value.city:
        out["city"] = value.city
    if value.postal_code:
        out["postalCode"] = value.postal_code
    return out if len(out) > 1 else None


def telecoms(values: tuple[Telecom, ...]) -> list[dict[str, Any]]:
    """FHIR ContactPoints from CDA ``tel:`` / ``mailto:`` URIs (others are kept as ``other``)."""
    out: list[dict[str, Any]] = []
    for item in values:
        scheme, _, rest = item.value.partition(":")
        system = {"tel": "phone", "mailto": "email", "fax": "fax"}.get(scheme.lower())
        point: dict[str, Any] = {"system": system or "other", "value": rest if system else item.value}
        if item.use in {"MC", "PG"}:
            point["use"] = "mobile"
        elif item.use in {"H", "HP"}:
            point["use"] = "home"
        elif item.use == "WP":
            point["use"] = "work"
        out.append(point)
    return out


def _human_name(name: PersonName) -> dict[str, Any]:
    out: dict[str, Any] = {"family": name.family}
    if name.given:
        out["given"] = [name.given]
    if name.prefix:
        out["prefix"] = [name.prefix]
    return out


def _contacts(person: Person, options: MappingOptions) -> list[dict[str, Any]]:
    contacts: list[dict[str, Any]] = []
    for parent in person.parents:
        system = options.system_for(parent.relationship.code_system) or systems.V3_ROLE_CODE
        if parent.relationship.code_system == "2.16.840.1.113883.5.111":
            system = systems.V3_ROLE_CODE
        contact: dict[str, Any] = {
            "relationship": [concept(system, parent.relationship.code, parent.relationship.display)],
            "name": _human_name(parent.name),
        }
        if parent.telecoms:
            contact["telecom"] = telecoms(parent.telecoms)
        parent_address = address(parent.address)
        if parent_address:
            contact["address"] = parent_address
        contacts.append(contact)
    for guardian in person.guardians:
        contact = {"relationship": [concept(options.system_for(guardian.measure.code_system),
                                            guardian.measure.code, guardian.measure.display)]}
        if guardian.person is not None:
            contact["name"] = _human_name(guardian.person)
        if guardian.organization_name:
            contact["organization"] = {"display": guardian.organization_name}
        if guardian.telecoms:
            contact["telecom"] = telecoms(guardian.telecoms)
        guardian_address = address(guardian.address)
        if guardian_address:
            contact["address"] = guardian_address
        if "name" in contact or "organization" in contact or "telecom" in contact or "address" in contact:
            contacts.append(contact)
    return contacts


def patient_resource(person: Person, context: InboundContext, options: MappingOptions) -> Resource:
    """The Patient resource of the person (identity as the CDA states it)."""
    profile = systems.PROFILE_TDDUI_PATIENT_INS if person.ins else systems.PROFILE_TDDUI_PATIENT
    patient: Resource = {
        "resourceType": "Patient",
        "meta": meta(context.source, [profile] if options.claim_profiles else None),
        "identifier": patient_identifiers(person, options),
    }
    names = _names(person)
    if names:
        patient["name"] = names
    contact_points = telecoms(person.telecoms)
    if contact_points:
        patient["telecom"] = contact_points
    if person.gender:
        patient["gender"] = _GENDER.get(person.gender.upper(), "unknown")
    birth = fhir_date(person.birth_date)
    if birth:
        patient["birthDate"] = birth
    if person.death is not None:
        death_date = fhir_date(person.death.date_deces)
        if death_date:
            patient["deceasedDateTime"] = death_date
        else:
            patient["deceasedBoolean"] = True
    home = address(person.address)
    if home:
        patient["address"] = [home]
    contacts = _contacts(person, options)
    if contacts:
        patient["contact"] = contacts
    if person.birth_place_city or person.birth_place_code:
        place: dict[str, Any] = {}
        if person.birth_place_city:
            place["city"] = person.birth_place_city
        if person.birth_place_code:
            # INSEE code of the birth commune: no confirmed FR Core extension here, kept as the address text
            place["text"] = person.birth_place_code
        patient["extension"] = [{"url": systems.EXT_BIRTH_PLACE, "valueAddress": place}]
    return patient


def patient_entry(person: Person, context: InboundContext, options: MappingOptions) -> Entry | None:
    """``PUT Patient?identifier=<INS>,<MDPH id>`` (``None`` when the CDA identifies nobody)."""
    query = patient_query(person)
    if query is None:
        return None
    return put_entry(patient_resource(person, context, options), patient_url(person), query)

