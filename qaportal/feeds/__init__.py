"""Hospital feeds: studies by DICOM C-STORE, reads by HL7 v2 and FHIR, results sent back."""
