"""SQLAlchemy models, one module per aggregate; importing this registers them all."""

from qaportal.models import (
    case_reader,  # noqa: F401 (keeps a case's reader up to date)
    review_counts,  # noqa: F401 (keeps the statistics' counts)
    reviewer_workload,  # noqa: F401 (keeps the reviewers' workload counts)
)
from qaportal.models.api_token import ApiToken
from qaportal.models.audit import AuditEvent, AuditHead
from qaportal.models.base import Base, utcnow
from qaportal.models.credentials import (
    SUBSPECIALTIES,
    BoardCertification,
    License,
    Privilege,
    UserSubspecialty,
)
from qaportal.models.delivery import DELIVERY_STATUSES, Delivery
from qaportal.models.discrepancy import (
    CaseEvent,
    CommitteeMember,
    CommitteeVote,
    DiscrepancyCase,
)
from qaportal.models.export_job import EXPORT_JOB_STATUSES, ExportJob
from qaportal.models.feeds import SEND_KINDS, DicomPeer
from qaportal.models.incoming_read import READ_STATUSES, IncomingRead
from qaportal.models.learning import (
    Conference,
    ConferenceAttendee,
    ConferenceCase,
    TeachingCase,
)
from qaportal.models.notification import Notification
from qaportal.models.opinion import (
    Opinion,
    OpinionAddendum,
    OpinionDecline,
    OpinionMessage,
    OpinionRequest,
)
from qaportal.models.pacs_object import PacsObject
from qaportal.models.read_version import OriginalReadVersion
from qaportal.models.report import REPORT_KINDS, ReportExport
from qaportal.models.review import (
    Review,
    ReviewAmendment,
    ReviewAssignment,
    SamplingRule,
    SamplingRun,
)
from qaportal.models.review_counts import ReviewDayCount, ReviewMonthCount
from qaportal.models.reviewer_workload import ReviewerStatusCount
from qaportal.models.session import RateLimitCounter, UserSession
from qaportal.models.study import (
    ACCESS_MODES,
    Instance,
    OriginalRead,
    Series,
    Study,
    StudyAccess,
    UploadBatch,
)
from qaportal.models.user import ROLES, User, UserRole
from qaportal.models.viewer_mark import ViewerMark

__all__ = [
    "ACCESS_MODES", "REPORT_KINDS", "ROLES", "SUBSPECIALTIES", "AuditEvent", "AuditHead", "Base",
    "BoardCertification", "Instance", "License", "Notification", "Opinion", "OpinionAddendum",
    "OpinionDecline", "OpinionMessage", "OpinionRequest", "OriginalRead", "Privilege",
    "ReportExport",
    "Series", "Study", "StudyAccess", "UploadBatch", "User", "UserRole", "UserSubspecialty",
    "utcnow",
    # peer review
    "CaseEvent", "CommitteeMember", "CommitteeVote", "Conference", "ConferenceAttendee",
    "ConferenceCase", "DiscrepancyCase", "Review", "ReviewAmendment", "ReviewAssignment",
    "ReviewDayCount", "ReviewMonthCount", "ReviewerStatusCount", "SamplingRule", "SamplingRun",
    "TeachingCase",
    # server-side sessions and rate limits
    "RateLimitCounter", "UserSession",
    # read corrections
    "OriginalReadVersion",
    # long exports made by the job queue
    "EXPORT_JOB_STATUSES", "ExportJob",
    # personal API tokens
    "ApiToken",
    # hospital feeds
    "SEND_KINDS", "DicomPeer",
    # the DICOMweb image store's keys
    "PacsObject",
    # deliveries of signed results
    "DELIVERY_STATUSES", "Delivery",
    "SEND_KINDS", "DicomPeer", "READ_STATUSES", "IncomingRead",
    # viewer marks (measurements and key images)
    "ViewerMark",
]
