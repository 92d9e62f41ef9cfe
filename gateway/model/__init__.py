"""The common model: FHIR R4 message Bundles built from canonical records.

Import FHIR things from here (``gateway.model``), never from
``fhir.resources`` directly.
"""

from gateway.model.bundle import build_bundle, deterministic_id
from gateway.model.fhir import FHIR_VERSION, FhirInvalid, check_resource, model_class, validate_resource

__all__ = ["FHIR_VERSION", "FhirInvalid", "build_bundle", "check_resource", "deterministic_id", "model_class",
           "validate_resource"]
