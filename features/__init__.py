"""Everything that must behave the same offline and online.

The data contract (schemas, loading, validation), the touchpoint taxonomy, job-title
parsing, point-in-time features, the snapshot and label builder, the synthetic CRM
generator and the rule-based points engine. `training` and `serving` import this
package; it imports neither.
"""

from features.contract import CONTRACT_VERSION
from features.crm import CRM, crm_from_frames, load_crm, read_crm
from features.validation import InvalidCRMError, Problem, ValidationReport

__all__ = [
    "CONTRACT_VERSION",
    "CRM",
    "InvalidCRMError",
    "Problem",
    "ValidationReport",
    "crm_from_frames",
    "load_crm",
    "read_crm",
]
