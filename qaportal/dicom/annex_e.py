"""PS3.15 Annex E, Table E.1-1: actions of the Basic Application Level Confidentiality Profile.

Actions: D dummy value, Z zero length, X remove, K keep, C clean, U replace UID
consistently. Where the standard gives a choice that depends on the IOD (X/Z, Z/D,
X/D, X/Z/D) this table fixes one: Z when the attribute is usually Type 2 (so the file
stays valid), X otherwise. X/Z/U* reference sequences are kept (K) and walked, so
the UIDs inside them are replaced. An option letter after the action says which
option retains the attribute:
  P  Retain Patient Characteristics       -> K
  E  Retain Device Identity (equipment)   -> K
  T  Retain Longitudinal Temporal Information with Modified Dates -> C (dates shifted)
The rows below are the hand-chosen ones; every other row of the standard's own table
(annex_e_standard.py, PS3.15 2024b) is added with the same choices (X where X is allowed,
Z for Z/D). LOCAL_ROWS go beyond the table: identifying attributes it does not list.
Attributes not listed are handled by rules in deidentify.py: private tags removed,
unlisted person names removed, unlisted non-standard UIDs replaced, unlisted dates
and times removed (or shifted/kept under the temporal option).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword

from .annex_e_standard import load_rows

_TABLE = """
AccessionNumber Z
AcquisitionComments X
AcquisitionContextSequence X
AcquisitionDate Z T
AcquisitionDateTime X T
AcquisitionDeviceProcessingDescription X
AcquisitionProtocolDescription X
AcquisitionTime Z T
AcquisitionUID U
ActualHumanPerformersSequence X
AdditionalPatientHistory X
AdmissionID X
AdmittingDate X T
AdmittingDiagnosesCodeSequence X
AdmittingDiagnosesDescription X
AdmittingTime X T
AffectedSOPInstanceUID X
Allergies X
Arbitrary X
AuthorObserverSequence X
BarcodeValue X
BranchOfService X
CassetteID X E
ClinicalTrialCoordinatingCenterName X
ClinicalTrialProtocolEthicsCommitteeApprovalNumber X
ClinicalTrialProtocolEthicsCommitteeName X
ClinicalTrialSiteName X
ClinicalTrialSponsorName X
ClinicalTrialSubjectID X
ClinicalTrialSubjectReadingID X
ClinicalTrialTimePointDescription X
CommentsOnRadiationDose X
CommentsOnThePerformedProcedureStep X
ConcatenationUID U
ConfidentialityConstraintOnPatientDataDescription X
ConsultingPhysicianIdentificationSequence X
ConsultingPhysicianName X
ContainerIdentifier D
ContentCreatorIdentificationCodeSequence X
ContentCreatorName Z
ContentDate Z T
ContentSequence X
ContentTime Z T
ContextGroupExtensionCreatorUID U
ContrastBolusStartTime X T
ContrastBolusStopTime X T
ContributionDateTime X T
ContrastBolusAgent Z
ContributionDescription X
CountryOfResidence X
CreatorVersionUID U
CurrentObserverTrial X
CurrentPatientLocation X
CurveDate X T
CurveTime X T
CustodialOrganizationSequence X
DataSetTrailingPadding X
DateOfLastCalibration X E
DateOfLastDetectorCalibration X E
DateTime X T
Date X T
DerivationDescription X
DetectorID X E
DeviceDescription X E
DeviceSerialNumber Z E
DeviceUID U E
DigitalSignatureUID X
DigitalSignaturesSequence X
DimensionOrganizationUID U
DischargeDiagnosisDescription X
DistributionAddress X
DistributionName X
DoseReferenceUID U
EncryptedAttributesSequence X
EndAcquisitionDateTime X T
EthnicGroup X P
ExpectedCompletionDateTime X T
FailedSOPInstanceUIDList U
FiducialUID U
FillerOrderNumberImagingServiceRequest Z
FrameAcquisitionDateTime X T
FrameComments X
FrameOfReferenceUID U
FrameReferenceDateTime X T
GantryID X E
GeneratorID X E
GraphicAnnotationSequence X
HumanPerformerName X
HumanPerformerOrganization X
IconImageSequence X
IdentifyingComments X
ImageComments X
ImagePresentationComments X
ImagingServiceRequestComments X
Impressions X
InstanceCoercionDateTime X T
InstanceCreationDate X T
InstanceCreationTime X T
InstanceCreatorUID U
InstitutionAddress X
InstitutionCodeSequence X
InstitutionName X
InstitutionalDepartmentName X
InstitutionalDepartmentTypeCodeSequence X
InsurancePlanIdentification X
IntendedRecipientsOfResultsIdentificationSequence X
InterpretationApproverSequence X
InterpretationAuthor X
InterpretationDiagnosisDescription X
InterpretationIDIssuer X
InterpretationRecorder X
InterpretationText X
InterpretationTranscriber X
InterventionDrugStartTime X T
InterventionDrugStopTime X T
IrradiationEventUID U
IssueDateOfImagingServiceRequest X T
IssueTimeOfImagingServiceRequest X T
IssuerOfAdmissionID X
IssuerOfAdmissionIDSequence X
IssuerOfPatientID X
IssuerOfPatientIDQualifiersSequence X
IssuerOfServiceEpisodeID X
LabelText X
LargePaletteColorLookupTableUID U
LastMenstrualDate X T
MAC X
MediaStorageSOPInstanceUID U
MedicalAlerts X
MedicalRecordLocator X
MilitaryRank X
ModifiedAttributesSequence X
ModifiedImageDescription X
ModifyingDeviceID X E
NameOfPhysiciansReadingStudy X
NamesOfIntendedRecipientsOfResults X
NetworkID X
ObservationDateTime X T
Occupation X
OperatorIdentificationSequence X
OperatorsName Z
OrderCallbackPhoneNumber X
OrderCallbackTelecomInformation X
OrderEnteredBy X
OrderEntererLocation X
OriginalAttributesSequence X
OtherPatientIDs X
OtherPatientIDsSequence X
OtherPatientNames X
ParticipantSequence X
PatientAddress X
PatientAge X P
PatientAlternativeCalendar X
PatientBirthDate Z
PatientBirthDateInAlternativeCalendar X
PatientBirthName X
PatientBirthTime X
PatientComments X
PatientDeathDateInAlternativeCalendar X
PatientID Z
PatientInstitutionResidence X
PatientInsurancePlanCodeSequence X
PatientMotherBirthName X
PatientName Z
PatientPrimaryLanguageCodeSequence X
PatientPrimaryLanguageModifierCodeSequence X
PatientReligiousPreference X
PatientSex Z P
PatientSexNeutered X P
PatientSize X P
PatientState X
PatientTelecomInformation X
PatientTelephoneNumbers X
PatientTransportArrangements X
PatientWeight X P
PerformedLocation X
PerformedProcedureStepDescription X
PerformedProcedureStepEndDate X T
PerformedProcedureStepEndDateTime X T
PerformedProcedureStepEndTime X T
PerformedProcedureStepID X
PerformedProcedureStepStartDate X T
PerformedProcedureStepStartDateTime X T
PerformedProcedureStepStartTime X T
PerformedStationAETitle X
PerformedStationGeographicLocationCodeSequence X
PerformedStationName X
PerformedStationNameCodeSequence X
PerformingPhysicianIdentificationSequence X
PerformingPhysicianName X
PersonAddress X
PersonIdentificationCodeSequence X
PersonName X
PersonTelecomInformation X
PersonTelephoneNumbers X
PhysicianApprovingInterpretation X
PhysiciansOfRecord X
PhysiciansOfRecordIdentificationSequence X
PhysiciansReadingStudyIdentificationSequence X
PlacerOrderNumberImagingServiceRequest Z
PlateID X E
PreMedication X
PregnancyStatus X P
ProtocolName X
RadiopharmaceuticalStartDateTime X T
RadiopharmaceuticalStartTime X T
RadiopharmaceuticalStopDateTime X T
RadiopharmaceuticalStopTime X T
ReasonForStudy X
ReasonForTheImagingServiceRequest X
ReasonForTheRequestedProcedure X
ReferencedDigitalSignatureSequence X
ReferencedFrameOfReferenceUID U
ReferencedGeneralPurposeScheduledProcedureStepTransactionUID U
ReferencedImageSequence K
ReferencedPatientAliasSequence X
ReferencedPatientPhotoSequence X
ReferencedPatientSequence X
ReferencedPerformedProcedureStepSequence X
ReferencedSOPInstanceMACSequence X
ReferencedSOPInstanceUID U
ReferencedSOPInstanceUIDInFile U
ReferencedStudySequence Z
ReferringPhysicianAddress X
ReferringPhysicianIdentificationSequence X
ReferringPhysicianName Z
ReferringPhysicianTelephoneNumbers X
RegionOfResidence X
RelatedFrameOfReferenceUID U
RequestAttributesSequence X
RequestedContrastAgent X
RequestedProcedureComments X
RequestedProcedureDescription X
RequestedProcedureID X
RequestedProcedureLocation X
RequestedSOPInstanceUID U
RequestingPhysician X
RequestingPhysicianIdentificationSequence X
RequestingService X
ResponsibleOrganization X
ResponsiblePerson X
ResultsComments X
ResultsDistributionListSequence X
ResultsIDIssuer X
ReviewDate X T
ReviewTime X T
ReviewerName X
ScheduledHumanPerformersSequence X
ScheduledPatientInstitutionResidence X
ScheduledPerformingPhysicianIdentificationSequence X
ScheduledPerformingPhysicianName X
ScheduledProcedureStepDescription X
ScheduledProcedureStepEndDate X T
ScheduledProcedureStepEndTime X T
ScheduledProcedureStepLocation X
ScheduledProcedureStepStartDate X T
ScheduledProcedureStepStartTime X T
ScheduledStationAETitle X
ScheduledStationGeographicLocationCodeSequence X
ScheduledStationName X
ScheduledStationNameCodeSequence X
ScheduledStudyLocation X
ScheduledStudyLocationAETitle X
SecondaryCaptureDeviceID X E
SeriesDate X T
SeriesDescription X
SeriesInstanceUID U
SeriesTime X T
ServiceEpisodeDescription X
ServiceEpisodeID X
SmokingStatus X P
SOPInstanceUID U
SourceImageSequence K
SpecialNeeds X
SpecimenUID U
StartAcquisitionDateTime X T
StationAETitle X
StationName X E
StorageMediaFileSetUID U
StudyArrivalDate X T
StudyArrivalTime X T
StudyComments X
StudyCompletionDate X T
StudyCompletionTime X T
StudyDate Z T
StudyDescription X
StudyID Z
StudyIDIssuer X
StudyInstanceUID U
StudyTime Z T
StudyVerifiedDate X T
StudyVerifiedTime X T
SynchronizationFrameOfReferenceUID U
TargetUID U
TemplateExtensionCreatorUID U
TemplateExtensionOrganizationUID U
TextComments X
TextString X
Time X T
TimeOfLastCalibration X E
TimezoneOffsetFromUTC X
TopicAuthor X
TopicKeywords X
TopicSubject X
TopicTitle X
TransactionUID U
UID U
UnformattedTextValue X
VerificationDateTime D T
VerifyingObserverIdentificationCodeSequence Z
VerifyingObserverName D
VerifyingOrganization X
VisitComments X
"""

# Standard UIDs that identify classes or schemes, not instances: never replaced.
KEEP_UIDS = (
    "SOPClassUID",
    "ReferencedSOPClassUID",
    "ReferencedSOPClassUIDInFile",
    "AffectedSOPClassUID",
    "RequestedSOPClassUID",
    "TransferSyntaxUID",
    "ReferencedTransferSyntaxUIDInFile",
    "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID",
    "CodingSchemeUID",
    "ContextUID",
    "MappingResourceUID",
    "PrivateInformationCreatorUID",
)

OPTION_LETTERS = {"P": "patient", "E": "device", "T": "temporal"}
# Not in Table E.1-1 (2024b), yet free text that names a patient's media or study in
# practice (a CD labelled "SMITH_J_CT"): removed too.
LOCAL_ROWS = ("StorageMediaFileSetID X",)


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of Table E.1-1: the basic action and the option (if any) that retains it."""

    keyword: str
    action: str
    option: str | None = None


def _build() -> dict[int, Rule]:
    """Parse the table, failing loudly on a keyword pydicom does not know."""
    rules: dict[int, Rule] = {}
    for line in [*_TABLE.strip().splitlines(), *LOCAL_ROWS]:
        keyword, action, *opt = line.split()
        tag = tag_for_keyword(keyword)
        if tag is None or action not in "DZXKCU":
            raise ValueError(f"bad Annex E row: {line!r}")
        rules[tag] = Rule(keyword, action, OPTION_LETTERS[opt[0]] if opt else None)
    for keyword in KEEP_UIDS:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"unknown keyword {keyword!r}")
        rules[tag] = Rule(keyword, "K")
    for row in load_rows():
        if row.tag not in rules:
            rules[row.tag] = Rule(row.keyword, row.chosen_action(), row.chosen_option())
    return rules


RULES: dict[int, Rule] = _build()
