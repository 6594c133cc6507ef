"""Canonical URLs and identifier systems the facade speaks (FR Core 2.x, ANS, HL7)."""

from __future__ import annotations

from typing import Final

FHIR_VERSION: Final = "4.0.1"

INS_NIR: Final = "urn:oid:1.2.250.1.213.1.4.8"
"""Identifier system of the INS-NIR (a permanent NIR)."""
INS_NIA: Final = "urn:oid:1.2.250.1.213.1.4.9"
"""Identifier system of the INS-NIA (a temporary number, first digit 7 or 8)."""
RPPS: Final = "https://rpps.esante.gouv.fr"

FR_CORE: Final = "https://hl7.fr/ig/fhir/core"
PATIENT_INS_PROFILE: Final = f"{FR_CORE}/StructureDefinition/fr-core-patient-ins"
PRACTITIONER_PROFILE: Final = f"{FR_CORE}/StructureDefinition/fr-core-practitioner"
IDENTIFIER_TYPES: Final = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
IDENTITY_RELIABILITY: Final = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS: Final = f"{FR_CORE}/CodeSystem/fr-core-fiabilite-identite"
INSEE_CODE: Final = f"{FR_CORE}/StructureDefinition/fr-core-address-insee-code"
BIRTH_PLACE: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
COMMUNES: Final = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
COUNTRIES: Final = "https://mos.esante.gouv.fr/NOS/TRE_R20-Pays/FHIR/TRE-R20-Pays"

ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
COPAY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
UCUM: Final = "http://unitsofmeasure.org"
ISSUE_TYPE: Final = "http://hl7.org/fhir/issue-type"

RIGHTS: Final = "urn:rempart:fhir:rights"
"""Rempart's own codes for the French rights the standard code systems do not name
(``amo``, ``c2s``, ``ame``, ``ald``): displayed in French."""
ERRORS: Final = "urn:rempart:error"
"""The API's stable error codes (``invalid_nir``, ``not_found``...), as OperationOutcome
``details`` codings: the same codes as the JSON API's ``error`` field."""
