"""The directory's tables, on the store's :class:`~gateway.store.models.Base`.

They are in the store's schema (:mod:`gateway.store.schema`, built by its
migrations), so a message, its deliveries and the directory rows they were
planned from share one database and one transaction.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base


class AgencyRow(Base):
    """An agency that sends or receives messages through the gateway."""

    __tablename__ = "directory_agency"

    # The agency URI (urn:x-safeguarding:agency:<kind>:<code>): its certificate's identity.
    uri: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    delivery: Mapped[str] = mapped_column(String(16), nullable=False)
    # HTTPS endpoint for push delivery; NULL for mailbox agencies.
    endpoint: Mapped[str | None] = mapped_column(String(2048))
    # Who hears when this agency misses a deadline after its own alert (an agency URI, e.g. the service
    # manager's system); NULL: a school's LA, or for an LA the agency itself, marked as an escalation.
    escalation_contact: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint("kind", "code", name="uq_directory_agency_kind_code"),
        CheckConstraint("kind IN ('school', 'police', 'la', 'gateway')", name="ck_directory_agency_kind"),
        CheckConstraint("(delivery = 'push' AND endpoint IS NOT NULL) OR (delivery = 'mailbox' AND endpoint IS NULL)",
                        name="ck_directory_agency_delivery"),
    )


class SchoolRow(Base):
    """A school (DfE URN) and the local authority it belongs to, connected or not."""

    __tablename__ = "directory_school"

    urn: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    la_code: Mapped[str] = mapped_column(String(3), nullable=False)


class ForceAreaRow(Base):
    """One local authority inside a police force's area."""

    __tablename__ = "directory_force_area"

    force_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    la_code: Mapped[str] = mapped_column(String(3), primary_key=True)


class PostcodeDistrictRow(Base):
    """A postcode district (outward code, ``SP10``) and the local authority it is in."""

    __tablename__ = "directory_postcode_district"

    district: Mapped[str] = mapped_column(String(4), primary_key=True)
    la_code: Mapped[str] = mapped_column(String(3), nullable=False)
    # Where the row came from ("seed", "add", "import <file> at <time>") and, for an import,
    # the file's row number: an operator can trace any routing decision to its source.
    source: Mapped[str] = mapped_column(String(255), nullable=False)
    source_row: Mapped[int | None] = mapped_column(Integer)
